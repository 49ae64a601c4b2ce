package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"banger/internal/api"
	"banger/internal/vm"
)

// stopVM shuts a VM down gracefully (kill=false) or at once (kill=true); a
// stopped one is left as it is.
func (d *Daemon) stopVM(ctx context.Context, name string, kill bool, timeout time.Duration, progress func(api.Progress)) (*vm.VM, error) {
	op := vm.OpStop
	if kill {
		op = vm.OpKill
	}
	v, unlock, noop, err := d.lockAndLoad(ctx, name, op)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if noop {
		return v, nil
	}
	if err := d.halt(ctx, v, kill, timeout, progress); err != nil {
		return nil, err
	}
	return v, nil
}

// halting is one stop of a VM whose operation lock is held.
type halting struct {
	d        *Daemon
	v        *vm.VM
	timeout  time.Duration
	progress func(api.Progress)
	// forced says why the VMM had to be stopped by signal, for the
	// stopped VM's reason.
	forced string
}

// halt declares and runs vm stop (or vm kill): mark the VM stopping, end
// its VMM, free what it held on the host and mark it stopped. It finishes
// even when the client goes away; a failure marks the VM an error.
func (d *Daemon) halt(ctx context.Context, v *vm.VM, kill bool, timeout time.Duration, progress func(api.Progress)) error {
	if timeout <= 0 {
		timeout = d.stopTimeout
	}
	ctx = context.WithoutCancel(ctx)
	h := &halting{d: d, v: v, timeout: timeout, progress: progress}
	hasVMM := d.deps.VMM != nil && v.Process.PID != 0
	name := "vm stop"
	if kill {
		name = "vm kill"
	}
	paused, suspended := v.State == vm.Paused, v.State == vm.Suspended
	err := d.run(ctx, operation{name: name, target: v.Name, logs: d.vmLogs(v), steps: []step{
		{name: "stopping", message: "marking the vm stopping", do: h.markStopping, skip: !hasVMM},
		// A paused guest cannot hear the power button.
		{name: "resume", message: "resuming the paused guest so it can power off", do: h.resume, skip: kill || !hasVMM || !paused},
		{name: "shutdown", message: fmt.Sprintf("asking the guest to power off (up to %s)", timeout), do: h.shutdown, skip: kill || !hasVMM},
		{name: "kill", message: "killing the VMM", do: h.kill, skip: !kill || !hasVMM},
		{name: "discard", message: "discarding the saved state of the suspended vm", do: h.discard, skip: !suspended},
		{name: "release", message: "releasing the tap, name and sockets", do: h.release},
	}}, progress)
	if err != nil && v.State != vm.Stopped {
		if serr := d.setState(ctx, v, vm.Error, err.Error()); serr != nil {
			err = errors.Join(err, serr)
		}
	}
	return err
}

func (h *halting) markStopping(ctx context.Context) error {
	return h.d.setState(ctx, h.v, vm.Stopping, "")
}

// shutdown asks the guest to power off. A guest that does not is stopped
// by signal, which loses what it had not written to its disks: the stop
// still succeeds, and says so in its progress and the stopped VM's reason.
func (h *halting) shutdown(ctx context.Context) error {
	err := h.d.deps.VMM.Shutdown(ctx, h.v, h.timeout)
	if !errors.Is(err, ErrForcedStop) {
		return err
	}
	h.forced = err.Error() + "; writes the guest had not flushed are lost"
	h.d.log.Warn("vm stopped by signal", "vm", h.v.Name, "reason", h.forced)
	if h.progress != nil {
		h.progress(api.Progress{Step: "shutdown", Message: h.forced})
	}
	return nil
}

func (h *halting) kill(ctx context.Context) error { return h.d.deps.VMM.Kill(ctx, h.v) }

func (h *halting) resume(ctx context.Context) error { return h.d.deps.VMM.Resume(ctx, h.v) }

func (h *halting) discard(context.Context) error { return removeSuspend(h.v) }

// release frees what the VM held and records it stopped. What could not
// be freed is named in the reason and left to reconcile's sweep.
func (h *halting) release(ctx context.Context) error {
	return h.d.markStopped(ctx, h.v, h.forced)
}

// markStopped frees what a VM whose VMM is gone held on the host and
// records it stopped with reason, in one write.
func (d *Daemon) markStopped(ctx context.Context, v *vm.VM, reason string) error {
	if err := d.freeHost(ctx, v); err != nil {
		d.log.Warn("releasing what a stopped vm held", "vm", v.Name, "err", err)
		reason = strings.TrimPrefix(reason+"; ", "; ") + err.Error()
	}
	v.Released()
	return d.setState(ctx, v, vm.Stopped, reason)
}

// freeHost removes what a running VM holds on the host: its TAP, sockets
// and CPU samples. It changes nothing in the database; the DNS record
// follows the state (setState).
func (d *Daemon) freeHost(ctx context.Context, v *vm.VM) error {
	if d.deps.Guest != nil {
		d.deps.Guest.Forget(v)
	}
	return d.releaseHost(ctx, v)
}

// releaseHost is freeHost but for the kept SSH connection.
func (d *Daemon) releaseHost(ctx context.Context, v *vm.VM) error {
	var errs []error
	if d.deps.Network != nil && v.TAP != "" {
		if err := d.deps.Network.DeleteTAP(ctx, v.TAP); err != nil {
			errs = append(errs, fmt.Errorf("deleting tap %s: %w", v.TAP, err))
		}
	}
	if err := removeSockets(v.Socket); err != nil {
		errs = append(errs, err)
	}
	d.stopForwards(v)
	d.forgetStats(v.Process.PID)
	return errors.Join(errs...)
}
