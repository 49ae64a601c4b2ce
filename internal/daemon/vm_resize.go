package daemon

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"banger/internal/api"
	"banger/internal/guest"
	"banger/internal/preflight"
	"banger/internal/vm"
)

// resizeVM grows a VM's work disk: a stopped VM's file and file system on
// the host, a running VM's file on the host and its file system online in
// the guest.
func (d *Daemon) resizeVM(ctx context.Context, name string, size int64, progress func(api.Progress)) (*vm.VM, error) {
	if err := vm.DefaultLimits.Check(1, vm.DefaultLimits.MinMemoryMiB, size); err != nil {
		return nil, api.Errorf(api.CodeInvalid, "%v", err)
	}
	v, unlock, _, err := d.lockAndLoad(ctx, name, vm.OpResize)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if v.State == vm.Stopped {
		if err := d.preflight(ctx, preflight.GrowDisk); err != nil {
			return nil, err
		}
	}
	if size < v.DiskBytes {
		return nil, api.Errorf(api.CodeInvalid, "cannot shrink the work disk of %s from %s to %s", v.Name, vm.FormatSize(v.DiskBytes), vm.FormatSize(size)).
			WithHint("shrinking could lose data; pick a size of at least %s", vm.FormatSize(v.DiskBytes))
	}
	if size == v.DiskBytes {
		return v, nil
	}
	r := &resizing{d: d, v: v, size: size}
	steps := []step{{name: "grow", message: "growing the work disk to " + vm.FormatSize(size), do: r.growOffline}}
	if v.State == vm.Running {
		steps = []step{
			{name: "extend", message: "extending the work disk's file to " + vm.FormatSize(size), do: r.extend},
			{name: "drive", message: "telling the VMM the work disk grew", do: r.updateDrive},
			{name: "growfs", message: "growing /work in the guest", do: r.growOnline},
		}
	}
	steps = append(steps, step{name: "record", message: "recording the new size", do: r.record})
	logs := []string{d.cfg.Paths.DaemonLog()}
	if v.State == vm.Running {
		logs = append(v.Logs(), logs...)
	}
	if err := d.run(ctx, operation{name: "vm resize", target: v.Name, logs: logs, steps: steps}, progress); err != nil {
		return nil, err
	}
	return v, nil
}

// resizing is one vm resize of a VM whose operation lock is held.
type resizing struct {
	d    *Daemon
	v    *vm.VM
	size int64
}

func (r *resizing) growOffline(ctx context.Context) error {
	return r.d.deps.Disks.Grow(ctx, r.v, r.size)
}

func (r *resizing) extend(ctx context.Context) error {
	return r.d.deps.Disks.ExtendWork(ctx, r.v, r.size)
}

func (r *resizing) updateDrive(ctx context.Context) error {
	return r.d.deps.VMM.UpdateWorkDrive(ctx, r.v)
}

// growWorkFS grows the mounted work file system to its disk's new size.
const growWorkFS = "PATH=/usr/sbin:/sbin:$PATH; resize2fs \"$(findfs LABEL=banger-work)\""

func (r *resizing) growOnline(ctx context.Context) error {
	if r.d.deps.Guest == nil {
		return api.Errorf(api.CodePrecondition, "this bangerd cannot reach guests, so it cannot grow a running vm's file system")
	}
	conn, err := r.d.deps.Guest.Connect(ctx, r.v)
	if err != nil {
		return err
	}
	defer conn.Close()
	var out bytes.Buffer
	if err := conn.Run(ctx, guest.Command{Line: growWorkFS, Stdout: &out, Stderr: &out}); err != nil {
		return fmt.Errorf("growing /work in the guest: %w: %s (the file is larger already; stop the vm and run `banger vm resize %s` with the same size to grow it offline)",
			err, strings.TrimSpace(out.String()), r.v.Name)
	}
	return nil
}

func (r *resizing) record(ctx context.Context) error {
	r.v.DiskBytes = r.size
	return r.d.saveVM(ctx, r.v)
}
