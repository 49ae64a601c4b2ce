package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"banger/internal/api"
	"banger/internal/disk"
	"banger/internal/guest"
	"banger/internal/preflight"
	"banger/internal/vm"
)

// resizeVM grows a VM's work disk, its root, or both: a stopped VM's
// files and file systems on the host; a running VM's work disk online (the
// file on the host, the file system in the guest). The root grows while
// the VM is stopped: its layer (or its own copy, for VMs made before
// layers) and the file system in it.
func (d *Daemon) resizeVM(ctx context.Context, name string, req api.ResizeVMRequest, progress func(api.Progress)) (*vm.VM, error) {
	if req.DiskBytes == 0 && req.RootBytes == 0 {
		return nil, api.Errorf(api.CodeInvalid, "nothing to resize: give a new work disk size, a new root size or both")
	}
	for _, size := range []int64{req.DiskBytes, req.RootBytes} {
		if size == 0 {
			continue
		}
		if err := vm.DefaultLimits.Check(1, vm.DefaultLimits.MinMemoryMiB, size); err != nil {
			return nil, api.Errorf(api.CodeInvalid, "%v", err)
		}
	}
	v, unlock, _, err := d.lockAndLoad(ctx, name, vm.OpResize)
	if err != nil {
		return nil, err
	}
	defer unlock()
	r := &resizing{d: d, v: v, size: req.DiskBytes, root: req.RootBytes}
	steps, err := r.plan()
	if err != nil || len(steps) == 0 {
		return v, err
	}
	if v.State == vm.Stopped {
		if err := d.preflight(ctx, preflight.GrowDisk); err != nil {
			return nil, err
		}
	}
	steps = append(steps, step{name: "record", message: "recording the new size", do: r.record})
	logs := []string{d.cfg.Paths.DaemonLog()}
	if v.State == vm.Running {
		logs = append(v.Logs(), logs...)
	}
	if err := d.run(ctx, operation{name: "vm resize", target: v.Name, logs: logs, steps: steps}, progress); err != nil {
		if errors.Is(err, disk.ErrShrink) {
			return nil, api.Errorf(api.CodeInvalid, "%v", err).WithHint("shrinking could lose data; pick a larger size")
		}
		return nil, err
	}
	return v, nil
}

// resizing is one vm resize of a VM whose operation lock is held.
type resizing struct {
	d    *Daemon
	v    *vm.VM
	size int64 // the work disk's new size, or 0
	root int64 // the root's new size, or 0
}

// plan returns the steps of the resize, none when there is nothing to do.
func (r *resizing) plan() ([]step, error) {
	v := r.v
	if r.size != 0 && r.size < v.DiskBytes {
		return nil, api.Errorf(api.CodeInvalid, "cannot shrink the work disk of %s from %s to %s", v.Name, vm.FormatSize(v.DiskBytes), vm.FormatSize(r.size)).
			WithHint("shrinking could lose data; pick a size of at least %s", vm.FormatSize(v.DiskBytes))
	}
	if r.root != 0 && v.State != vm.Stopped {
		return nil, api.Errorf(api.CodePrecondition, "cannot grow the root of %s while it is %s: the root grows while the vm is stopped", v.Name, v.State).
			WithHint("banger vm stop %[1]s && banger vm resize %[1]s --root-size %s", v.Name, vm.FormatSize(r.root))
	}
	var steps []step
	if r.root != 0 {
		steps = append(steps, step{name: "growroot", message: "growing the root to " + vm.FormatSize(r.root), do: r.growRoot})
	}
	switch {
	case r.size == 0 || r.size == v.DiskBytes:
	case v.State == vm.Running:
		steps = append(steps,
			step{name: "extend", message: "extending the work disk's file to " + vm.FormatSize(r.size), do: r.extend},
			step{name: "drive", message: "telling the VMM the work disk grew", do: r.updateDrive},
			step{name: "growfs", message: "growing /work in the guest", do: r.growOnline})
	default:
		steps = append(steps, step{name: "grow", message: "growing the work disk to " + vm.FormatSize(r.size), do: r.growOffline})
	}
	return steps, nil
}

func (r *resizing) growRoot(ctx context.Context) error {
	return r.d.deps.Disks.GrowRoot(ctx, r.v, r.root)
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
	// A guest that dies meanwhile ends the wait at once.
	return r.d.whileVMMRuns(ctx, r.v, func(ctx context.Context) error {
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
	})
}

func (r *resizing) record(ctx context.Context) error {
	if r.size != 0 {
		r.v.DiskBytes = r.size
	}
	return r.d.saveVM(ctx, r.v)
}
