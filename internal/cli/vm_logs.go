package cli

import (
	"context"

	"github.com/spf13/cobra"
)

func (app *App) newVMLogsCommand() *cobra.Command {
	var vmm, console, follow bool
	cmd := &cobra.Command{
		Use:               "logs NAME",
		Short:             "Print a VM's console log (or its VMM log)",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: app.completeVMNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			source := "console"
			if vmm {
				source = "vmm"
			}
			if vmm && console {
				return usageError(cmd, "choose --console or --vmm, not both")
			}
			return app.runVMLogs(cmd.Context(), args[0], source, follow)
		},
	}
	cmd.Flags().BoolVar(&console, "console", false, "the guest's serial console (default)")
	cmd.Flags().BoolVar(&vmm, "vmm", false, "the VMM's own log")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines")
	return cmd
}

func (app *App) runVMLogs(ctx context.Context, name, source string, follow bool) error {
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	return c.VMLogs(ctx, name, source, follow, app.Stdout)
}
