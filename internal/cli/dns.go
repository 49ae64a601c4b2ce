package cli

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/spf13/cobra"

	"banger/internal/dns"
	"banger/internal/network"
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
	loop, err := netip.ParseAddrPort(cfg.DNSListen)
	if err != nil {
		return dns.HostConfig{}, err
	}
	rev, err := dns.ReverseZonesOf(subnet.Masked())
	if err != nil {
		return dns.HostConfig{}, err
	}
	gw := netip.AddrPortFrom(network.Gateway(subnet.Masked()), uint16(cfg.DNSGuestPort))
	return dns.HostConfig{Link: cfg.Bridge, Gateway: gw, Loopback: loop, Zone: "vm.", ReverseZones: rev}, nil
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
	op, verb := dns.Setup, "set up"
	if teardown {
		op, verb = dns.Teardown, "removed"
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
	fmt.Fprintf(app.Stdout, ".vm resolution %s (%s)\n", verb, res.Method)
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
