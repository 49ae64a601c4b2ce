package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"banger/internal/api"
	"banger/internal/vm"
)

type vmCreateOptions struct {
	image   string
	cpus    int
	memory  string
	disk    string
	root    string
	noStart bool
	wait    waitFlags
	output  string
}

func (app *App) newVMCreateCommand() *cobra.Command {
	var o vmCreateOptions
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a VM and boot it",
		Long: `Create a VM from an image and boot it.

The VM's root is copy-on-write over its image: an instant reflink clone
where the data directory supports it (XFS, btrfs), elsewhere a small sparse
layer over the image, which stays read-only and shared (only what the VM
changes takes space either way). It also gets a work disk mounted at /work in
the guest, an address on banger's bridge that it keeps across restarts, and
the DNS name NAME.vm. create returns when the guest's SSH server answers
(--no-wait: once the VMM booted), on a terminal or in a script, so the next
command can reach the guest.

When 'banger image warm' made a template of the same image, vCPUs, memory and
disk, the VM is restored from it with its own identity instead of booting
(see 'banger vm clone'); a template that cannot be used is reported and the
VM boots.`,
		Example: `  banger vm create dev
  banger vm create web --image base --cpus 4 --memory 2G --disk 20G`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runVMCreate(cmd.Context(), cmd, args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.image, "image", "", "image to boot (default: the configured default_image)")
	f.IntVar(&o.cpus, "cpus", 0, "vCPUs (default: the configured default_cpus)")
	f.StringVar(&o.memory, "memory", "", "memory, e.g. 512M or 2G (default: the configured default_memory)")
	f.StringVar(&o.disk, "disk", "", "work disk size, e.g. 8G (default: the configured default_disk)")
	f.StringVar(&o.root, "root-size", "", "grow the root disk to this size before first boot, e.g. 8G (default: the image's size)")
	f.BoolVar(&o.noStart, "no-start", false, "create the VM stopped")
	addWaitFlags(cmd, &o.wait)
	addOutputFlag(cmd, &o.output)
	return cmd
}

func (app *App) runVMCreate(ctx context.Context, cmd *cobra.Command, name string, o vmCreateOptions) error {
	if err := checkOutput(cmd, o.output); err != nil {
		return err
	}
	if err := vm.ValidateName(name); err != nil {
		return &api.Error{Code: api.CodeInvalid, Message: err.Error()}
	}
	req := api.CreateVMRequest{Name: name, Image: o.image, CPUs: o.cpus, NoStart: o.noStart, WaitSSH: o.wait.enabled() && !o.noStart}
	var err error
	if req.MemoryMiB, req.DiskBytes, err = shapeSizes(cmd, o.memory, o.disk); err != nil {
		return err
	}
	if o.root != "" {
		b, err := vm.ParseSize(o.root)
		if err != nil {
			return usageError(cmd, "--root-size: %v", err)
		}
		req.RootBytes = b
	}
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	pr := newProgress(app.Stderr)
	v, warnings, err := c.CreateVM(ctx, req, pr.Update)
	pr.Done()
	for _, w := range warnings {
		fmt.Fprintf(app.Stderr, "warning: %s\n", w)
	}
	if err != nil {
		return err
	}
	if o.output == "json" {
		return writeJSON(app.Stdout, v)
	}
	if v.State != "running" {
		fmt.Fprintf(app.Stdout, "created %s (stopped); start it with `banger vm start %s`\n", v.Name, v.Name)
		return nil
	}
	fmt.Fprintf(app.Stdout, "created %s: %s at %s\n  connect: banger vm ssh %s\n", v.Name, v.DNSName, v.IP, v.Name)
	return nil
}

// shapeSizes parses --memory (to MiB) and --disk (to bytes); empty ones
// are zero, the configured defaults.
func shapeSizes(cmd *cobra.Command, memory, disk string) (int, int64, error) {
	var mem int
	var d int64
	if memory != "" {
		b, err := vm.ParseSize(memory)
		if err != nil {
			return 0, 0, usageError(cmd, "--memory: %v", err)
		}
		mem = int(b / vm.MiB)
	}
	if disk != "" {
		b, err := vm.ParseSize(disk)
		if err != nil {
			return 0, 0, usageError(cmd, "--disk: %v", err)
		}
		d = b
	}
	return mem, d, nil
}
