package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"banger/internal/api"
)

func (app *App) newDNSSetupCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "setup",
		Short: "Route ~vm to bangerd in the host's resolver (or print the snippet to install)",
		Long: `Ask bangerd to route the .vm zone to its DNS server in the host's resolver.
With systemd-resolved it sets the bridge link's DNS server and routing domain
(then, or when it creates the bridge with the first VM, and again whenever it
recreates the bridge: resolved forgets a link's settings when the link goes).
With NetworkManager's dnsmasq or a system dnsmasq it prints the file to
install. bangerd records the choice; 'banger dns teardown' undoes it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runDNSSetup(cmd.Context(), false)
		},
	}
}

// runDNSSetup asks the daemon to set the host's resolver up (or to undo
// it) and says what was done or what is left to do by hand.
func (app *App) runDNSSetup(ctx context.Context, remove bool) error {
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	res, err := c.DNSSetup(ctx, api.DNSSetupRequest{Remove: remove})
	if err != nil {
		return err
	}
	if res.Deferred {
		fmt.Fprintf(app.Stdout, "recorded: bangerd routes ~vm to %s through systemd-resolved when it creates %s (with the first VM)\n", res.Gateway, res.Link)
		return nil
	}
	for _, argv := range res.Ran {
		fmt.Fprintf(app.Stdout, "ran: %s\n", strings.Join(argv, " "))
	}
	if m := res.Manual; m != nil {
		if remove {
			fmt.Fprintf(app.Stdout, "%s uses dnsmasq; banger does not edit its files. Delete %s, then run:\n", res.Method, m.Path)
		} else {
			fmt.Fprintf(app.Stdout, "%s uses dnsmasq; banger does not edit its files. Install this as %s:\n\n%s\nthen run:\n", res.Method, m.Path, m.Content)
		}
		for _, argv := range m.Apply {
			fmt.Fprintf(app.Stdout, "  %s\n", strings.Join(argv, " "))
		}
		return nil
	}
	verb := "set up"
	if remove {
		verb = "removed"
	}
	fmt.Fprintf(app.Stdout, ".vm resolution %s (%s)\n", verb, res.Method)
	return nil
}
