package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"banger/internal/api"
)

func (app *App) newVMStopCommand() *cobra.Command {
	var all bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "stop NAME...",
		Short: "Shut VMs down gracefully",
		Long: `Shut VMs down gracefully: banger sends Ctrl-Alt-Del to the guest, waits up
to --timeout for it to power off, then sends SIGTERM and finally SIGKILL to
the VMM. Disks and the address are kept; 'banger vm start' boots it again.
A paused VM is resumed first, so that it can power off; a suspended VM's
saved state is discarded.`,
		ValidArgsFunction: app.completeVMNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runVMStop(cmd.Context(), cmd, args, all, timeout)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "stop every VM")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "graceful shutdown time before SIGTERM/SIGKILL (default: the configured stop_timeout)")
	return cmd
}

func (app *App) runVMStop(ctx context.Context, cmd *cobra.Command, args []string, all bool, timeout time.Duration) error {
	return app.eachVM(ctx, cmd, args, all, func(c *api.Client, name string) error {
		pr := newProgress(app.Stderr)
		_, err := c.StopVM(ctx, name, api.StopVMRequest{TimeoutSeconds: int(timeout.Seconds())}, pr.Update)
		pr.Done()
		if err != nil {
			return err
		}
		fmt.Fprintf(app.Stdout, "stopped %s\n", name)
		return nil
	})
}
