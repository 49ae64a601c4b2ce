package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"banger/internal/api"
)

func (app *App) newVMKillCommand() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:               "kill NAME...",
		Short:             "Stop VMs at once (SIGKILL to the VMM, no guest shutdown)",
		ValidArgsFunction: app.completeVMNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runVMKill(cmd.Context(), cmd, args, all)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "kill every VM")
	return cmd
}

func (app *App) runVMKill(ctx context.Context, cmd *cobra.Command, args []string, all bool) error {
	return app.eachVM(ctx, cmd, args, all, func(c *api.Client, name string) error {
		if _, err := c.KillVM(ctx, name); err != nil {
			return err
		}
		fmt.Fprintf(app.Stdout, "killed %s\n", name)
		return nil
	})
}
