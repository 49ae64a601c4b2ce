package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"banger/internal/api"
	"banger/internal/vm"
)

type imageBootstrapOptions struct {
	suite, size, packages, kernelPackage, kernel, mirror string
	refresh                                              bool
}

func (app *App) newImageBootstrapCommand() *cobra.Command {
	var o imageBootstrapOptions
	cmd := &cobra.Command{
		Use:   "bootstrap NAME",
		Short: "Build a bootable base image from Debian packages",
		Long: `Build a complete, bootable base image from Debian's package archive: a root
file system made by mmdebstrap (systemd, udev, openssh-server, iproute2 and
--packages) written into a sparse ext4 file without a loop device, the kernel
of --kernel-package (bzImage plus an extracted ELF vmlinux for Firecracker),
and a small initramfs that loads the virtio modules. Each VM gets its own
SSH host keys and machine-id at create time, so the image has none.

--kernel microvm builds the guest kernel instead from Debian's linux-source
package with banger's microVM configuration: virtio over MMIO, ext4,
overlayfs and what systemd needs built in, no modules, nothing else. It
boots faster than Debian's cloud kernel; the first build compiles it (a few
minutes), later bootstraps take it from the cache. Containers and other
uses that need kernel modules want the default kernel.

Downloads and results are cached by their inputs, so an identical second
bootstrap takes seconds. Runs as you (mmdebstrap in a user namespace, with the
subordinate ids 'sudo banger system setup' grants); needs mmdebstrap and uidmap.`,
		Example: `  banger image bootstrap base
  banger image bootstrap dev --packages git,curl,build-essential --size 4G
  banger image bootstrap fast --kernel microvm`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runImageBootstrap(cmd.Context(), cmd, args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.suite, "suite", "", "Debian suite (default bookworm)")
	f.StringVar(&o.size, "size", "", "root file system size, e.g. 2G (default 2G; the file is sparse)")
	f.StringVar(&o.packages, "packages", "", "extra packages, comma-separated")
	f.StringVar(&o.kernel, "kernel", "", "guest kernel: debian (--kernel-package with its modules) or microvm (built from linux-source, drivers built in); default: the bootstrap_kernel setting, else debian")
	f.StringVar(&o.kernelPackage, "kernel-package", "", "Debian kernel package for --kernel debian (default linux-image-cloud-amd64)")
	f.StringVar(&o.mirror, "mirror", "", "Debian mirror URL (default: the host's apt mirror)")
	f.BoolVar(&o.refresh, "refresh", false, "rebuild even when an identical cached image exists")
	return cmd
}

func (app *App) runImageBootstrap(ctx context.Context, cmd *cobra.Command, name string, o imageBootstrapOptions) error {
	if o.kernel == "" {
		cfg, err := app.config()
		if err != nil {
			return err
		}
		o.kernel = cfg.BootstrapKernel
	}
	req := api.BootstrapImageRequest{Name: name, Suite: o.suite, KernelPackage: o.kernelPackage, Kernel: o.kernel, Mirror: o.mirror, Refresh: o.refresh}
	if o.size != "" {
		b, err := vm.ParseSize(o.size)
		if err != nil {
			return usageError(cmd, "--size: %v", err)
		}
		req.SizeBytes = b
	}
	for _, p := range strings.Split(o.packages, ",") {
		if p = strings.TrimSpace(p); p != "" {
			req.Packages = append(req.Packages, p)
		}
	}
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	pr := newProgress(app.Stderr)
	img, err := c.BootstrapImage(ctx, req, pr.Update)
	pr.Done()
	if err != nil {
		return err
	}
	fmt.Fprintf(app.Stdout, "image %s ready: kernel %s, %s root file system (%s on disk)\n  create a VM: banger vm create dev --image %s\n",
		img.Name, img.KernelVersion, vm.FormatSize(img.SizeBytes), humanBytes(img.AllocatedBytes), img.Name)
	return nil
}
