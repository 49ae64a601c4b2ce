package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"banger/internal/api"
	"banger/internal/vm"
)

func (app *App) newVMResizeCommand() *cobra.Command {
	var disk, root string
	cmd := &cobra.Command{
		Use:   "resize NAME [--disk SIZE] [--root-size SIZE]",
		Short: "Grow a VM's work disk (stopped or running) or its root (stopped), keeping data",
		Long: `Grow a VM's work disk (mounted at /work in the guest), its root, or both;
data is kept and shrinking is refused.

--disk: on a stopped VM the file grows and its ext4 file system is checked
and resized on the host. On a running VM it grows online: the file grows,
the VMM is told (Firecracker's PATCH /drives), and the guest grows the
mounted file system with resize2fs while programs keep writing.

--root-size: the room the VM has for changes to its root file system (its
layer over the shared image, or its own root disk for VMs made before
layers) grows, file and file system, while the VM is stopped.`,
		Example: `  banger vm resize dev --disk 16G
  banger vm stop dev && banger vm resize dev --root-size 8G && banger vm start dev`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: app.completeVMNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runVMResize(cmd.Context(), cmd, args[0], disk, root)
		},
	}
	cmd.Flags().StringVar(&disk, "disk", "", "new work disk size, e.g. 16G")
	cmd.Flags().StringVar(&root, "root-size", "", "new root size, e.g. 8G (the VM must be stopped)")
	return cmd
}

func (app *App) runVMResize(ctx context.Context, cmd *cobra.Command, name, disk, root string) error {
	if disk == "" && root == "" {
		return usageError(cmd, "give --disk, --root-size or both")
	}
	var req api.ResizeVMRequest
	for _, f := range []struct {
		flag, value string
		to          *int64
	}{{"--disk", disk, &req.DiskBytes}, {"--root-size", root, &req.RootBytes}} {
		if f.value == "" {
			continue
		}
		size, err := vm.ParseSize(f.value)
		if err != nil {
			return usageError(cmd, "%s: %v", f.flag, err)
		}
		*f.to = size
	}
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	pr := newProgress(app.Stderr)
	v, err := c.ResizeVM(ctx, name, req, pr.Update)
	pr.Done()
	if err != nil {
		return err
	}
	if req.DiskBytes != 0 {
		fmt.Fprintf(app.Stdout, "work disk of %s is now %s\n", v.Name, vm.FormatSize(v.DiskBytes))
	}
	if req.RootBytes != 0 {
		fmt.Fprintf(app.Stdout, "root of %s is now %s\n", v.Name, vm.FormatSize(req.RootBytes))
	}
	return nil
}
