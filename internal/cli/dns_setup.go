package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"banger/internal/dns"
)

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
