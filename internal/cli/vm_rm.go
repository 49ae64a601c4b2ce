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
host key. A running VM is refused unless --force, which kills it first.
--force also waits, up to two minutes, for an operation in progress on
the VM (one an interrupted command left running, say) to end, and then
removes the VM whatever state that operation left it in.`,
		ValidArgsFunction: app.completeVMNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runVMRemove(cmd.Context(), cmd, args, all, force)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "remove every VM")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill running VMs instead of refusing, waiting out an operation in progress on them")
	return cmd
}

func (app *App) runVMRemove(ctx context.Context, cmd *cobra.Command, args []string, all, force bool) error {
	return app.eachVM(ctx, cmd, args, all, func(c *api.Client, name string) error {
		// A removal takes a moment and says nothing, unless it waits for
		// an operation in progress on the VM.
		pr := newProgress(app.Stderr)
		err := c.RemoveVMWithProgress(ctx, name, api.RemoveVMRequest{Force: force}, func(p api.Progress) {
			if p.Step == api.StepWait {
				pr.Update(p)
			}
		})
		pr.Done()
		if err != nil {
			return err
		}
		fmt.Fprintf(app.Stdout, "removed %s\n", name)
		return nil
	})
}
