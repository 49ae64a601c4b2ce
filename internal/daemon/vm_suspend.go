package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"banger/internal/api"
	"banger/internal/guest"
	"banger/internal/vm"
)

// pauseVM stops a running VM's vCPUs; its VMM and memory stay.
func (d *Daemon) pauseVM(ctx context.Context, name string, progress func(api.Progress)) (*vm.VM, error) {
	return d.suspendOp(ctx, name, vm.OpPause, progress, func(s *suspending) []step {
		return []step{{name: "pause", message: "pausing the guest's vCPUs", do: s.pause}}
	})
}

// resumeVM lets a paused VM run again, then sets its clock in the
// background (the guest's clock stood still while it was paused).
func (d *Daemon) resumeVM(ctx context.Context, name string, progress func(api.Progress)) (*vm.VM, error) {
	v, err := d.suspendOp(ctx, name, vm.OpResume, progress, func(s *suspending) []step {
		return []step{{name: "resume", message: "resuming the guest's vCPUs", do: s.resume}}
	})
	if err == nil {
		d.syncClockLater(v)
	}
	return v, err
}

// suspendVM saves a running or paused VM's device state and memory into
// its directory and ends its VMM: the VM holds no memory, CPU, TAP or
// name until `vm start` resumes it where it was. A failure leaves the VM
// running as before (or to reconcile when its VMM died) and no state
// files.
func (d *Daemon) suspendVM(ctx context.Context, name string, progress func(api.Progress)) (*vm.VM, error) {
	return d.suspendOp(ctx, name, vm.OpSuspend, progress, func(s *suspending) []step {
		v := s.v
		return []step{
			{name: "clock", message: "readying the guest's clock for the resume", do: s.armClock, undo: s.disarmClock, skip: v.State != vm.Running || isTemplate(v)},
			{name: "pause", message: "pausing the guest's vCPUs", do: s.pause, undo: s.resume, skip: v.State != vm.Running},
			{name: "snapshot", message: "saving the guest's state and memory to " + v.Dir, do: s.snapshot, undo: s.discard},
			{name: "suspended", message: "recording the vm suspended and ending its VMM", do: s.finish},
		}
	})
}

// suspendOp runs op ("vm pause", "vm resume", "vm suspend") on the VM
// called name under its lock, with the steps made for it. It finishes
// even when the client goes away.
func (d *Daemon) suspendOp(ctx context.Context, name string, op vm.Op, progress func(api.Progress), steps func(*suspending) []step) (*vm.VM, error) {
	v, unlock, noop, err := d.lockAndLoad(ctx, name, op)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if noop {
		return v, nil
	}
	s := &suspending{d: d, v: v}
	return v, d.run(context.WithoutCancel(ctx), operation{name: "vm " + string(op), target: v.Name, logs: d.vmLogs(v), steps: steps(s)}, progress)
}

func (d *Daemon) vmLogs(v *vm.VM) []string { return append(v.Logs(), d.cfg.Paths.DaemonLog()) }

// suspending is one pause, resume or suspend of a VM whose lock is held.
type suspending struct {
	d *Daemon
	v *vm.VM
}

// pause records the VM paused, then stops its vCPUs: a crash in between
// leaves a row that says paused over a guest that runs, which a resume
// (a no-op for the VMM) settles. A VMM that refuses puts the row back.
func (s *suspending) pause(ctx context.Context) error {
	if err := s.d.setState(ctx, s.v, vm.Paused, ""); err != nil {
		return err
	}
	if err := s.d.deps.VMM.Pause(ctx, s.v); err != nil {
		return errors.Join(err, s.d.setState(context.WithoutCancel(ctx), s.v, vm.Running, ""))
	}
	return nil
}

// resume lets the vCPUs run, then records the VM running.
func (s *suspending) resume(ctx context.Context) error {
	if err := s.d.deps.VMM.Resume(ctx, s.v); err != nil {
		return err
	}
	return s.d.setState(ctx, s.v, vm.Running, "")
}

// armClock leaves a command in the guest that the restoring start gives
// the host's time (Guest.ArmClock). A guest that refuses is suspended all
// the same; its clock is then set over a new SSH session. Templates are
// saved without one: every VM made from them would hold it.
func (s *suspending) armClock(ctx context.Context) error {
	if s.d.deps.Guest == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, armClockTimeout)
	defer cancel()
	if err := s.d.deps.Guest.ArmClock(ctx, s.v); err != nil {
		s.d.log.Warn("readying the clock of a vm being suspended", "vm", s.v.Name, "err", err)
	}
	return nil
}

func (s *suspending) disarmClock(context.Context) error {
	if s.d.deps.Guest != nil {
		s.d.deps.Guest.DisarmClock(s.v)
	}
	return nil
}

// armClockTimeout bounds ArmClock, which needs an SSH connection.
const armClockTimeout = 10 * time.Second

func (s *suspending) snapshot(ctx context.Context) error {
	if err := s.d.deps.VMM.Snapshot(ctx, s.v); err != nil {
		return fmt.Errorf("%w (is %s full? `df -h %s` says)", err, s.v.Dir, s.v.Dir)
	}
	return nil
}

func (s *suspending) discard(context.Context) error { return removeSuspend(s.v) }

// finish records the VM suspended without a process, in one write, then
// ends the VMM and frees what it held. From that write on the files are
// the VM's state: a crash before the VMM is gone leaves a VMM no row
// records, which reconcile stops.
func (s *suspending) finish(ctx context.Context) error {
	d, v := s.d, s.v
	held := *v
	v.Released()
	if err := d.setState(ctx, v, vm.Suspended, ""); err != nil {
		v.Process, v.StartedAt = held.Process, held.StartedAt
		return err
	}
	// The kept SSH connection is parked, not closed: the guest's end of
	// it is in the snapshot, and a restore finds it answering.
	if d.deps.Guest != nil {
		d.deps.Guest.Park(&held)
	}
	if err := errors.Join(d.deps.VMM.Kill(ctx, &held), d.releaseHost(ctx, &held)); err != nil {
		d.log.Warn("ending the vmm of a suspended vm; reconcile retries", "vm", v.Name, "pid", held.Process.PID, "err", err)
	}
	return nil
}

// removeSuspend removes a VM's suspend files; missing ones are fine.
func removeSuspend(v *vm.VM) error {
	var errs []error
	for _, p := range []string{v.SuspendState(), v.SuspendMemory()} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing saved state: %w", err))
		}
	}
	return errors.Join(errs...)
}

// hasSuspend reports whether both suspend files of v exist.
func hasSuspend(v *vm.VM) bool {
	for _, p := range []string{v.SuspendState(), v.SuspendMemory()} {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

// suspendBytes is the disk space a suspended VM's files take.
func suspendBytes(v *vm.VM) int64 {
	return allocated(v.SuspendState()) + allocated(v.SuspendMemory())
}

// restoreVMM starts the VMM from the suspend files, paused, and records
// its process (the VM stays starting). Then discardSuspend and
// resumeRestored follow: the files go before the guest runs, so that a
// crash at any point either finds the files and a guest that never ran
// (back to suspended) or no files (the guest's disks moved on).
func (b *booting) restoreVMM(ctx context.Context) error {
	d, v := b.d, b.v
	img, err := b.prepareVMM(ctx)
	if err != nil {
		return err
	}
	proc, err := d.deps.VMM.Restore(ctx, v, img, d.deps.Network.Info(v.IP))
	if err != nil {
		return fmt.Errorf("%w; the saved state is kept: `banger vm start %s` tries again, `banger vm stop %s` discards it", err, v.Name, v.Name)
	}
	v.Process = proc
	if err := d.saveVM(ctx, v); err != nil {
		return errors.Join(err, b.killVMM(context.WithoutCancel(ctx)))
	}
	return nil
}

func (b *booting) discardSuspend(context.Context) error { return removeSuspend(b.v) }

// resumeRestored lets the restored guest run and records it running.
func (b *booting) resumeRestored(ctx context.Context) error {
	if err := b.d.deps.VMM.Resume(ctx, b.v); err != nil {
		return err
	}
	b.v.StartedAt = b.d.deps.Now().UTC()
	return b.d.setState(ctx, b.v, vm.Running, "")
}

// syncClock sets the guest's clock to the host's over SSH: a restored or
// resumed guest's clock stood still while it was saved or paused. It
// needs no hardware clock and no agent, only `date` in the guest. A guest
// that refuses keeps running; the failure is reported, not fatal.
func (b *booting) syncClock(ctx context.Context) error {
	if err := b.d.syncClock(ctx, b.v); err != nil {
		b.d.log.Warn("setting the clock of a restored vm", "vm", b.v.Name, "err", err)
		if b.progress != nil {
			b.progress(api.Progress{Step: "clock", Message: fmt.Sprintf("the guest's clock is behind the host's: %v", err)})
		}
	}
	return nil
}

func (d *Daemon) syncClock(ctx context.Context, v *vm.VM) error {
	if d.deps.Guest.SetClock(ctx, v, d.deps.Now) {
		return nil
	}
	now := d.deps.Now()
	req := guest.ExecRequest{Argv: []string{"date", "-u", "-s", fmt.Sprintf("@%d.%09d", now.Unix(), now.Nanosecond())}}
	if err := d.runInGuest(ctx, v, req, nil, io.Discard); err != nil {
		return fmt.Errorf("setting the guest's clock: %w", err)
	}
	return nil
}

// runInGuest runs req in v's guest over the kept connection and waits for
// it; a command that exits non-zero is an error carrying its code and its
// standard error.
func (d *Daemon) runInGuest(ctx context.Context, v *vm.VM, req guest.ExecRequest, stdin io.Reader, stdout io.Writer) error {
	var stderr bytes.Buffer
	p, err := d.deps.Guest.Exec(ctx, v, req, stdin, stdout, &stderr)
	if err != nil {
		return err
	}
	code, err := p.Wait()
	if err == nil && code != 0 {
		err = fmt.Errorf("%s exited %d: %s", req.Argv[0], code, strings.TrimSpace(stderr.String()))
	}
	return err
}

// syncClockLater sets the clock of a resumed VM without holding up the
// resume; a failure is logged.
func (d *Daemon) syncClockLater(v *vm.VM) {
	if d.deps.Guest == nil {
		return
	}
	vc := *v
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := d.syncClock(ctx, &vc); err != nil {
			d.log.Warn("setting the clock of a resumed vm", "vm", vc.Name, "err", err)
		}
	}()
}
