package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"banger/internal/api"
)

type imageWarmOptions struct {
	cpus   int
	memory string
	disk   string
}

func (app *App) newImageWarmCommand() *cobra.Command {
	var o imageWarmOptions
	cmd := &cobra.Command{
		Use:   "warm IMAGE",
		Short: "Boot a template of an image once, so that vm create restores it",
		Long: `Make the warm template of IMAGE for one shape (vCPUs, memory, work disk): a
hidden VM booted once, left to finish its boot, given an identity agent
(a process waiting for its clone's identity on port 222 of the template's
address, behind a secret token), and suspended. A later 'banger vm create'
of the same image and shape restores it and gives it its own identity
(address, MAC, hostname, machine-id, host key, entropy, clock) through that
agent instead of booting. A template that is current is kept; one whose image
was rebuilt is made again here, skipped by vm create, and removed by
'banger image prune' and 'banger image rm'. Templates are listed by
'banger vm list -a' (suspended, their saved memory in MEM).

Under QEMU's software emulation such a create takes about 1.4 s to SSH,
under a sixth of a cold boot (most of it the guest's SSH handshake at its
new address, run with its code not yet translated); with KVM or
Firecracker a fraction of that.`,
		Example: `  banger image warm base
  banger image warm base --cpus 2 --memory 1G --disk 8G`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runImageWarm(cmd.Context(), cmd, args[0], o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.cpus, "cpus", 0, "vCPUs (default: the configured default_cpus)")
	f.StringVar(&o.memory, "memory", "", "memory, e.g. 512M or 2G (default: the configured default_memory)")
	f.StringVar(&o.disk, "disk", "", "work disk size, e.g. 8G (default: the configured default_disk)")
	return cmd
}

func (app *App) runImageWarm(ctx context.Context, cmd *cobra.Command, name string, o imageWarmOptions) error {
	req := api.WarmImageRequest{CPUs: o.cpus}
	var err error
	if req.MemoryMiB, req.DiskBytes, err = shapeSizes(cmd, o.memory, o.disk); err != nil {
		return err
	}
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	pr := newProgress(app.Stderr)
	v, err := c.WarmImage(ctx, name, req, pr.Update)
	pr.Done()
	if err != nil {
		return err
	}
	fmt.Fprintf(app.Stdout, "warm template %s of image %s (%d vCPU, %s memory, %s disk)\n", v.Name, name, v.CPUs, humanBytes(int64(v.MemoryMiB)<<20), humanBytes(v.DiskBytes))
	return nil
}
