package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"banger/internal/dns"
)

type dnsStatusOptions struct {
	output, probe string
}

func (app *App) newDNSStatusCommand() *cobra.Command {
	var o dnsStatusOptions
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Say whether `getent hosts NAME.vm` works on this host, and why not",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runDNSStatus(cmd.Context(), cmd, o)
		},
	}
	addOutputFlag(cmd, &o.output)
	cmd.Flags().StringVar(&o.probe, "vm", "", "also look up this running VM's name with getent")
	return cmd
}

func (app *App) runDNSStatus(ctx context.Context, cmd *cobra.Command, o dnsStatusOptions) error {
	if err := checkOutput(cmd, o.output); err != nil {
		return err
	}
	hc, err := app.dnsHostConfig()
	if err != nil {
		return err
	}
	st := dns.Status(ctx, dnsDeps(), hc, o.probe)
	if o.output == "json" {
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
}
