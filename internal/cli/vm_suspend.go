package cli

import (
	"context"

	"github.com/spf13/cobra"

	"banger/internal/api"
)

func (app *App) newVMSuspendCommand() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "suspend NAME...",
		Short: "Save running or paused VMs to disk and free their memory",
		Long: `Save running or paused VMs to disk: the guest's device state and memory go
to files in the VM's directory, its VMM exits and its memory, CPU and TAP are
freed. 'banger vm start' resumes it where it was, processes and all, with its
clock set to the host's; 'banger vm stop' discards the saved state instead.`,
		ValidArgsFunction: app.completeVMNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runVMVerb(cmd.Context(), cmd, args, all, "suspended", func(ctx context.Context, c *api.Client, name string) error {
				pr := newProgress(app.Stderr)
				defer pr.Done()
				_, err := c.SuspendVM(ctx, name, pr.Update)
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "suspend every VM")
	return cmd
}
