package cli

import (
	"context"

	"github.com/spf13/cobra"
)

type vmLogsOptions struct {
	vmm, console, follow bool
}

func (app *App) newVMLogsCommand() *cobra.Command {
	var o vmLogsOptions
	cmd := &cobra.Command{
		Use:               "logs NAME",
		Short:             "Print a VM's console log (or its VMM log)",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: app.completeVMNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runVMLogs(cmd.Context(), cmd, args[0], o)
		},
	}
	cmd.Flags().BoolVar(&o.console, "console", false, "the guest's serial console (default)")
	cmd.Flags().BoolVar(&o.vmm, "vmm", false, "the VMM's own log")
	cmd.Flags().BoolVarP(&o.follow, "follow", "f", false, "keep printing new lines")
	return cmd
}

func (app *App) runVMLogs(ctx context.Context, cmd *cobra.Command, name string, o vmLogsOptions) error {
	if o.vmm && o.console {
		return usageError(cmd, "choose --console or --vmm, not both")
	}
	source := "console"
	if o.vmm {
		source = "vmm"
	}
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	return c.VMLogs(ctx, name, source, o.follow, app.Stdout)
}
