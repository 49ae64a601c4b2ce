package cli

import (
	"context"

	"github.com/spf13/cobra"
)

type vmLogsOptions struct {
	vmm, console, follow, boot bool
}

func (app *App) newVMLogsCommand() *cobra.Command {
	var o vmLogsOptions
	cmd := &cobra.Command{
		Use:               "logs NAME",
		Short:             "Print a VM's console log (or its VMM log, or its last boot's timeline)",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: app.completeVMNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runVMLogs(cmd.Context(), cmd, args[0], o)
		},
	}
	cmd.Flags().BoolVar(&o.console, "console", false, "the guest's serial console (default)")
	cmd.Flags().BoolVar(&o.vmm, "vmm", false, "the VMM's own log")
	cmd.Flags().BoolVarP(&o.follow, "follow", "f", false, "keep printing new lines")
	cmd.Flags().BoolVar(&o.boot, "boot", false, "the last boot's timeline: VMM, kernel, initramfs, systemd and SSH phases")
	return cmd
}

func (app *App) runVMLogs(ctx context.Context, cmd *cobra.Command, name string, o vmLogsOptions) error {
	if o.vmm && o.console {
		return usageError(cmd, "choose --console or --vmm, not both")
	}
	if o.boot {
		if o.vmm || o.console || o.follow {
			return usageError(cmd, "--boot prints the boot timeline: it takes neither --console, --vmm nor --follow")
		}
		return app.runVMBootTimeline(ctx, name)
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

// runVMBootTimeline prints the timeline of the VM's last boot.
func (app *App) runVMBootTimeline(ctx context.Context, name string) error {
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	v, err := c.VM(ctx, name)
	if err != nil {
		return err
	}
	return writeBootTable(app.Stdout, name, v.Boot)
}
