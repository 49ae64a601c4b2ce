package cli

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/spf13/cobra"

	"banger/internal/nat"
	"banger/internal/system"
)

type natOptions struct {
	subnet, bridge string
	dnsPort        int
}

func (app *App) newInternalNATCommand() *cobra.Command {
	var o natOptions
	cmd := &cobra.Command{
		Use:   "nat up|down|status",
		Short: "Add or remove banger's NAT and forwarding rules (the same ones bangerd uses)",
		Long: `Add, remove or inspect banger's iptables rules: masquerading for the VM
subnet, forwarding to and from the bridge, and the guests' DNS redirect. They
live in banger's own chains (BANGER-FWD, BANGER-IN, BANGER-PRE, BANGER-POST),
so 'down' removes exactly them and nothing else. Both are idempotent.`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"up", "down", "status"},
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runInternalNAT(cmd.Context(), cmd, args[0], o)
		},
	}
	cmd.Flags().StringVar(&o.subnet, "subnet", "", "VM subnet (default: the configured subnet)")
	cmd.Flags().StringVar(&o.bridge, "bridge", "", "bridge (default: the configured bridge)")
	cmd.Flags().IntVar(&o.dnsPort, "dns-port", -1, "daemon DNS port on the gateway for the guests' port 53 (default: the configured dns_guest_port; 0 disables)")
	return cmd
}

func (app *App) runInternalNAT(ctx context.Context, cmd *cobra.Command, action string, o natOptions) error {
	cfg, err := app.config()
	if err != nil {
		return err
	}
	if o.subnet == "" {
		o.subnet = cfg.Subnet
	}
	if o.bridge == "" {
		o.bridge = cfg.Bridge
	}
	if o.dnsPort < 0 {
		o.dnsPort = cfg.DNSGuestPort
	}
	subnet, err := netip.ParsePrefix(o.subnet)
	if err != nil {
		return usageError(cmd, "--subnet %q: %v", o.subnet, err)
	}
	n, err := nat.New(nat.Config{Subnet: subnet.Masked(), Bridge: o.bridge, DNSPort: o.dnsPort}, nat.Deps{Runner: system.Privileged()})
	if err != nil {
		return err
	}
	switch action {
	case "up":
		if err := n.Up(ctx); err != nil {
			return err
		}
		fmt.Fprintf(app.Stdout, "nat up for %s on %s\n", subnet.Masked(), o.bridge)
	case "down":
		if err := n.Down(ctx); err != nil {
			return err
		}
		fmt.Fprintf(app.Stdout, "nat down for %s on %s\n", subnet.Masked(), o.bridge)
	case "status":
		st, err := n.Status(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(app.Stdout, st.String())
	default:
		return usageError(cmd, "unknown action %q: use up, down or status", action)
	}
	return nil
}
