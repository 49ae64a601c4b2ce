package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"banger/internal/dns"
	"banger/internal/system"
)

func (app *App) newDNSCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dns",
		Short: "Make NAME.vm resolve on the host (systemd-resolved, dnsmasq)",
		Long: `bangerd serves the .vm zone itself: on the loopback listener (dns_listen,
127.0.0.1:42069 by default) for the host, and on the bridge address for the
guests. 'banger dns setup' routes ~vm to it in the host's resolver, so that
ssh, curl and browsers resolve NAME.vm. Nothing changes until you run it.`,
	}
	cmd.AddCommand(app.newDNSSetupCommand(), app.newDNSStatusCommand(), app.newDNSTeardownCommand())
	return cmd
}

func (app *App) dnsHostConfig() (dns.HostConfig, error) {
	cfg, err := app.config()
	if err != nil {
		return dns.HostConfig{}, err
	}
	subnet, err := netip.ParsePrefix(cfg.Subnet)
	if err != nil {
		return dns.HostConfig{}, err
	}
	return dns.HostConfigFor(cfg.Bridge, subnet, cfg.DNSListen, cfg.DNSGuestPort)
}

func dnsDeps() dns.HostDeps {
	return dns.HostDeps{Privileged: system.Privileged(), Plain: system.Plain()}
}

func (app *App) newDNSSetupCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "setup",
		Short: "Route ~vm to bangerd in the host's resolver (or print the snippet to install)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runDNSSetup(cmd.Context(), false)
		},
	}
}

func (app *App) newDNSTeardownCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "teardown",
		Short: "Undo dns setup",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runDNSSetup(cmd.Context(), true)
		},
	}
}

func (app *App) runDNSSetup(ctx context.Context, teardown bool) error {
	hc, err := app.dnsHostConfig()
	if err != nil {
		return err
	}
	marker := filepath.Join(app.cfg.Paths.StateDir, dns.SetupMarker)
	op, verb := dns.Setup, "set up"
	if teardown {
		op, verb = dns.Teardown, "removed"
		if err := os.Remove(marker); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("forgetting dns setup: %w", err)
		}
	} else if _, err := net.InterfaceByName(hc.Link); err != nil && dns.Detect(ctx, dnsDeps()).Method == dns.MethodResolved {
		// resolved's per-link settings need the bridge, which bangerd
		// makes with the first VM: record the wish and let it apply them.
		if err := writeMarker(marker); err != nil {
			return err
		}
		fmt.Fprintf(app.Stdout, "recorded: bangerd routes ~vm to %s through systemd-resolved when it creates %s (with the first VM)\n", hc.Gateway, hc.Link)
		return nil
	}
	res, err := op(ctx, dnsDeps(), hc)
	if errors.Is(err, dns.ErrNoResolver) {
		return fmt.Errorf("%w; query the daemon directly with `dig @%s -p %d NAME.vm`", err, hc.Loopback.Addr(), hc.Loopback.Port())
	}
	if err != nil {
		return err
	}
	for _, argv := range res.Ran {
		fmt.Fprintf(app.Stdout, "ran: %s\n", strings.Join(argv, " "))
	}
	if res.Manual != nil {
		fmt.Fprintf(app.Stdout, "%s uses dnsmasq; banger does not edit its files. Install this as %s:\n\n%s\nthen run:\n", res.Method, res.Manual.Path, res.Manual.Content)
		for _, argv := range res.Manual.Apply {
			fmt.Fprintf(app.Stdout, "  %s\n", strings.Join(argv, " "))
		}
		return nil
	}
	if !teardown && res.Method == dns.MethodResolved {
		if err := writeMarker(marker); err != nil {
			return err
		}
	}
	fmt.Fprintf(app.Stdout, ".vm resolution %s (%s)\n", verb, res.Method)
	return nil
}

// writeMarker records that dns setup ran, so bangerd re-applies it.
func writeMarker(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("recording dns setup: %w", err)
	}
	if err := os.WriteFile(path, []byte("resolved\n"), 0o600); err != nil {
		return fmt.Errorf("recording dns setup: %w", err)
	}
	return nil
}

func (app *App) newDNSStatusCommand() *cobra.Command {
	var output, probe string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Say whether `getent hosts NAME.vm` works on this host, and why not",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(cmd, output); err != nil {
				return err
			}
			hc, err := app.dnsHostConfig()
			if err != nil {
				return err
			}
			st := dns.Status(cmd.Context(), dnsDeps(), hc, probe)
			if output == "json" {
				return writeJSON(app.Stdout, st)
			}
			t := newTable(app.Stdout, "CHECK", "OK", "DETAIL")
			for _, c := range st.Checks {
				t.row(c.Name, fmt.Sprint(c.OK), c.Detail)
				if !c.OK && c.Fix != "" {
					t.row("", "", "fix: "+c.Fix)
				}
			}
			if err := t.flush(); err != nil {
				return err
			}
			if st.Works {
				fmt.Fprintln(app.Stdout, "\nNAME.vm resolves on this host")
				return nil
			}
			fmt.Fprintln(app.Stdout, "\nNAME.vm does not resolve on this host yet; `banger dns setup` fixes what it can")
			return &exitError{code: 1}
		},
	}
	addOutputFlag(cmd, &output)
	cmd.Flags().StringVar(&probe, "vm", "", "also look up this running VM's name with getent")
	return cmd
}
