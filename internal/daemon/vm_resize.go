package daemon

import (
	"context"

	"banger/internal/api"
	"banger/internal/preflight"
	"banger/internal/vm"
)

// resizeVM grows a stopped VM's work disk (file and file system).
func (d *Daemon) resizeVM(ctx context.Context, name string, size int64, progress func(api.Progress)) (*vm.VM, error) {
	if err := vm.DefaultLimits.Check(1, vm.DefaultLimits.MinMemoryMiB, size); err != nil {
		return nil, api.Errorf(api.CodeInvalid, "%v", err)
	}
	if err := d.preflight(ctx, preflight.GrowDisk); err != nil {
		return nil, err
	}
	v, unlock, _, err := d.lockAndLoad(ctx, name, vm.OpResize)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if size < v.DiskBytes {
		return nil, api.Errorf(api.CodeInvalid, "cannot shrink the work disk of %s from %s to %s", v.Name, vm.FormatSize(v.DiskBytes), vm.FormatSize(size)).
			WithHint("shrinking could lose data; pick a size of at least %s", vm.FormatSize(v.DiskBytes))
	}
	if size == v.DiskBytes {
		return v, nil
	}
	grow := func(ctx context.Context) error { return d.deps.Disks.Grow(ctx, v, size) }
	record := func(ctx context.Context) error {
		v.DiskBytes = size
		return d.saveVM(ctx, v)
	}
	err = d.run(ctx, operation{name: "vm resize", target: v.Name, logs: []string{d.cfg.Paths.DaemonLog()}, steps: []step{
		{name: "grow", message: "growing the work disk to " + vm.FormatSize(size), do: grow},
		{name: "record", message: "recording the new size", do: record},
	}}, progress)
	if err != nil {
		return nil, err
	}
	return v, nil
}
