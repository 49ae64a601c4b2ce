package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"banger/internal/api"
)

func (app *App) newVMPauseCommand() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "pause NAME...",
		Short: "Freeze running VMs: no CPU used, memory kept",
		Long: `Freeze running VMs: the guest's vCPUs stop, its memory, VMM, address and
name stay. 'banger vm resume' lets it go on where it was (and sets its clock);
'banger vm suspend' saves a paused VM to disk.`,
		ValidArgsFunction: app.completeVMNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runVMVerb(cmd.Context(), cmd, args, all, "paused", func(ctx context.Context, c *api.Client, name string) error {
				_, err := c.PauseVM(ctx, name)
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "pause every VM")
	return cmd
}

// runVMVerb runs call on each named VM and reports "<done> NAME".
func (app *App) runVMVerb(ctx context.Context, cmd *cobra.Command, args []string, all bool, done string, call func(context.Context, *api.Client, string) error) error {
	return app.eachVM(ctx, cmd, args, all, func(c *api.Client, name string) error {
		if err := call(ctx, c, name); err != nil {
			return err
		}
		fmt.Fprintf(app.Stdout, "%s %s\n", done, name)
		return nil
	})
}
