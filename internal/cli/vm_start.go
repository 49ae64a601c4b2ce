package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"banger/internal/api"
)

func (app *App) newVMStartCommand() *cobra.Command {
	var all bool
	var wait waitFlags
	cmd := &cobra.Command{
		Use:               "start NAME...",
		Short:             "Boot stopped VMs (same address, same disks)",
		ValidArgsFunction: app.completeVMNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runVMStart(cmd.Context(), cmd, args, all, wait)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "start every VM")
	addWaitFlags(cmd, &wait)
	return cmd
}

func (app *App) runVMStart(ctx context.Context, cmd *cobra.Command, args []string, all bool, wait waitFlags) error {
	return app.eachVM(ctx, cmd, args, all, func(c *api.Client, name string) error {
		pr := newProgress(app.Stderr)
		v, err := c.StartVM(ctx, name, wait.enabled(), pr.Update)
		pr.Done()
		if err != nil {
			return err
		}
		fmt.Fprintf(app.Stdout, "started %s (%s at %s)\n", v.Name, v.DNSName, v.IP)
		return nil
	})
}
