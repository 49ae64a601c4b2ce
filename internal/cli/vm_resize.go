package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"banger/internal/api"
	"banger/internal/vm"
)

func (app *App) newVMResizeCommand() *cobra.Command {
	var disk string
	cmd := &cobra.Command{
		Use:   "resize NAME --disk SIZE",
		Short: "Grow a VM's work disk, keeping its data, stopped or running",
		Long: `Grow a VM's work disk (mounted at /work in the guest); data is kept.
On a stopped VM the file grows and its ext4 file system is checked and
resized on the host. On a running VM it grows online: the file grows, the
VMM is told (Firecracker's PATCH /drives), and the guest grows the mounted
file system with resize2fs while programs keep writing. Shrinking is
refused.`,
		Example:           "  banger vm resize dev --disk 16G",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: app.completeVMNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runVMResize(cmd.Context(), cmd, args[0], disk)
		},
	}
	cmd.Flags().StringVar(&disk, "disk", "", "new work disk size, e.g. 16G (required)")
	return cmd
}

func (app *App) runVMResize(ctx context.Context, cmd *cobra.Command, name, disk string) error {
	if disk == "" {
		return usageError(cmd, "--disk is required")
	}
	size, err := vm.ParseSize(disk)
	if err != nil {
		return usageError(cmd, "--disk: %v", err)
	}
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	pr := newProgress(app.Stderr)
	v, err := c.ResizeVM(ctx, name, api.ResizeVMRequest{DiskBytes: size}, pr.Update)
	pr.Done()
	if err != nil {
		return err
	}
	fmt.Fprintf(app.Stdout, "work disk of %s is now %s\n", v.Name, vm.FormatSize(v.DiskBytes))
	return nil
}
