package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"banger/internal/api"
)

func (app *App) newVMRemoveCommand() *cobra.Command {
	var all, force bool
	cmd := &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"remove", "delete"},
		Short:   "Remove VMs and everything banger made for them",
		Long: `Remove VMs: their disks, TAP device, DNS record, sockets, logs and pinned
host key. A running VM is refused unless --force, which kills it first.`,
		ValidArgsFunction: app.completeVMNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runVMRemove(cmd.Context(), cmd, args, all, force)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "remove every VM")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill running VMs instead of refusing")
	return cmd
}

func (app *App) runVMRemove(ctx context.Context, cmd *cobra.Command, args []string, all, force bool) error {
	return app.eachVM(ctx, cmd, args, all, func(c *api.Client, name string) error {
		if err := c.RemoveVM(ctx, name, api.RemoveVMRequest{Force: force}); err != nil {
			return err
		}
		fmt.Fprintf(app.Stdout, "removed %s\n", name)
		return nil
	})
}
