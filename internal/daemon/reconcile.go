package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"banger/internal/vm"
)

func (d *Daemon) reconcileLoop(ctx context.Context) {
	t := time.NewTicker(d.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.shutdown:
			return
		case <-t.C:
			if err := d.Reconcile(ctx); err != nil && ctx.Err() == nil {
				d.log.Warn("reconciling", "err", err)
			}
		}
	}
}

// Reconcile compares the database with the host and repairs the
// difference: it adopts VMMs that still run, marks VMs whose VMM is gone as
// stopped and releases what they held, marks VMs whose creation was
// interrupted as errors, removes leftovers nobody owns (TAPs, sockets,
// half-made directories) and rebuilds the DNS records from the running VMs.
// Doubt never deletes user data: such a VM is marked error with the reason.
// Each repaired VM is written once and announced once.
func (d *Daemon) Reconcile(ctx context.Context) error {
	vms, err := d.store.VMs(ctx)
	if err != nil {
		return err
	}
	rc := &reconciliation{d: d}
	for i := range vms {
		rc.vm(ctx, &vms[i])
	}
	running, err := d.rebuildNames(ctx)
	if err != nil {
		rc.errs = append(rc.errs, err)
	}
	if running > 0 && !d.netReady.Load() && d.deps.Network != nil {
		// Adopted VMs need the bridge-side services (NAT, guest resolver)
		// that a start would have set up.
		if err := d.networkUp(ctx); err != nil {
			rc.errs = append(rc.errs, fmt.Errorf("restoring the network of running vms: %w", err))
		}
	}
	rc.errs = append(rc.errs, d.sweep(ctx))
	return errors.Join(rc.errs...)
}

// reconciliation is one pass of Reconcile.
type reconciliation struct {
	d       *Daemon
	serving map[string]vm.Process // VMM processes by API socket, read once when needed
	errs    []error
}

// vm repairs one VM that no operation holds.
func (rc *reconciliation) vm(ctx context.Context, v *vm.VM) {
	d := rc.d
	if d.locks.busy(vmKey(v.Name)) {
		return
	}
	if d.orphanBuildVM(v) {
		rc.errs = append(rc.errs, d.removeOrphanBuildVM(ctx, v))
		return
	}
	if v.State == vm.Removing {
		d.log.Warn("finishing a removal that was cut off", "vm", v.Name)
		rc.errs = append(rc.errs, d.removeVM(ctx, v.Name, true, nil))
		return
	}
	alive := d.vmmAlive(v)
	if !alive {
		rc.stopUnrecorded(ctx, v)
	}
	var err error
	switch {
	case v.State == vm.Creating:
		// A clone cut off runs its VMM while it is still creating: it may
		// hold its source's address and identity. It must not be adopted.
		d.log.Warn("vm creation was interrupted", "vm", v.Name)
		if alive {
			err = d.deps.VMM.Kill(ctx, v)
		}
		v.Released()
		err = errors.Join(err, d.freeHost(ctx, v), d.setState(ctx, v, vm.Error,
			fmt.Sprintf("creation was interrupted (bangerd stopped while making it); remove it with `banger vm rm %s` and create it again", v.Name)))
	case alive && v.State == vm.Starting && hasSuspend(v):
		// A resume cut off before its saved state was dropped: the guest
		// never ran, so the saved state is still the truth.
		err = errors.Join(d.deps.VMM.Kill(ctx, v), d.freeHost(ctx, v))
		v.Released()
		err = errors.Join(err, d.setState(ctx, v, vm.Suspended, resumeInterrupted(v)))
	case alive:
		err = rc.adopt(ctx, v)
	case v.State == vm.Suspended:
		if !hasSuspend(v) {
			d.log.Warn("saved state of a suspended vm is missing", "vm", v.Name, "path", v.SuspendMemory())
			err = errors.Join(removeSuspend(v), d.markStopped(ctx, v, fmt.Sprintf("its saved state (%s) is missing, so it boots from its disks on the next start", v.SuspendMemory())))
		}
	case v.State == vm.Starting && hasSuspend(v):
		err = errors.Join(d.freeHost(ctx, v), d.setState(ctx, v, vm.Suspended, resumeInterrupted(v)))
	case v.State == vm.Running || v.State == vm.Paused || v.State == vm.Starting || v.State == vm.Stopping || v.Process.PID != 0:
		reason := ""
		switch v.State {
		case vm.Running, vm.Paused:
			reason = fmt.Sprintf("the VMM (pid %d) exited without a stop request; see %s and %s", v.Process.PID, v.ConsoleLog(), v.VMMLog())
		case vm.Starting:
			reason = fmt.Sprintf("the boot was interrupted (bangerd stopped while starting it); start it again with `banger vm start %s`", v.Name)
		}
		d.log.Warn("vmm is gone", "vm", v.Name, "pid", v.Process.PID, "was", v.State)
		err = d.markStopped(ctx, v, reason)
	}
	if v.State != vm.Suspended && hasAnySuspend(v) {
		// Left by a suspend cut off before it was recorded, or a resume
		// after it ran the guest: only a suspended VM owns these files.
		d.log.Info("removing saved state the vm does not own", "vm", v.Name, "state", v.State)
		err = errors.Join(err, removeSuspend(v))
	}
	rc.errs = append(rc.errs, err)
}

// resumeInterrupted is the reason of a VM whose resume a crash cut off
// before the guest ran.
func resumeInterrupted(v *vm.VM) string {
	return fmt.Sprintf("the resume was interrupted (bangerd stopped while starting it); start it again with `banger vm start %s`", v.Name)
}

// hasAnySuspend reports whether either suspend file of v exists.
func hasAnySuspend(v *vm.VM) bool {
	for _, p := range []string{v.SuspendState(), v.SuspendMemory()} {
		if _, err := os.Lstat(p); err == nil {
			return true
		}
	}
	return false
}

// adopt takes a VMM that still runs as the VM's: a daemon restart, or an
// operation cut off by a crash after the VMM started.
func (rc *reconciliation) adopt(ctx context.Context, v *vm.VM) error {
	rc.d.sample(v.Process.PID)
	if rc.d.forwarder(v, false) == nil {
		// A daemon restart: the VM's forwards come back with it.
		if err := rc.d.startForwards(ctx, v); err != nil {
			rc.d.log.Warn("restoring forwards", "vm", v.Name, "err", err)
		}
	}
	if v.HoldsVMM() {
		// A paused VM's VMM is alive and paused: nothing to do.
		return nil
	}
	if v.State == vm.Starting {
		// A resume cut off after its saved state was dropped may have left
		// the guest paused; resuming a running guest changes nothing.
		if err := rc.d.deps.VMM.Resume(ctx, v); err != nil {
			rc.d.log.Warn("resuming an adopted vmm", "vm", v.Name, "err", err)
		}
	}
	rc.d.log.Info("adopting running vmm", "vm", v.Name, "pid", v.Process.PID, "was", v.State)
	return rc.d.setState(ctx, v, vm.Running, "")
}

// stopUnrecorded stops a VMM that serves this VM's socket but that the
// database does not record: a start cut off by a daemon crash. It never
// became the VM's process; stopping it leaves nothing running unowned.
func (rc *reconciliation) stopUnrecorded(ctx context.Context, v *vm.VM) {
	d := rc.d
	if d.deps.VMM == nil {
		return
	}
	if rc.serving == nil {
		rc.serving = d.deps.VMM.Serving()
	}
	p, ok := rc.serving[v.Socket]
	if !ok {
		return
	}
	d.log.Warn("stopping a vmm whose start never completed", "vm", v.Name, "pid", p.PID)
	orphan := *v
	orphan.Process = p
	if err := d.deps.VMM.Kill(ctx, &orphan); err != nil {
		rc.errs = append(rc.errs, fmt.Errorf("stopping the unrecorded vmm of %s (pid %d): %w", v.Name, p.PID, err))
	}
}
