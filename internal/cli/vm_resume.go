package cli

import (
	"context"

	"github.com/spf13/cobra"

	"banger/internal/api"
)

func (app *App) newVMResumeCommand() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "resume NAME...",
		Short: "Let paused VMs run again",
		Long: `Let paused VMs run again where they stopped. The guest's clock, which stood
still while it was paused, is set to the host's right after. A suspended VM
is resumed by 'banger vm start'.`,
		ValidArgsFunction: app.completeVMNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runVMVerb(cmd.Context(), cmd, args, all, "resumed", func(ctx context.Context, c *api.Client, name string) error {
				_, err := c.ResumeVM(ctx, name)
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "resume every paused VM")
	return cmd
}
