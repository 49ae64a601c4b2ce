package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"banger/internal/api"
	"banger/internal/vm"
)

// removeVM deletes a VM and everything banger made for it. A running VM is
// removed only with force, which kills it first.
func (d *Daemon) removeVM(ctx context.Context, name string, force bool, progress func(api.Progress)) error {
	op := vm.OpRemove
	if force {
		op = vm.OpForceRemove
	}
	v, unlock, _, err := d.lockAndLoad(ctx, name, op)
	if err != nil {
		return err
	}
	defer unlock()
	return d.removeLocked(ctx, v, force, progress)
}

// forceRemoveWait bounds how long vm rm --force waits for an operation
// that holds the VM: one a client that went away left running (a suspend,
// a stop) ends on its own within it.
const forceRemoveWait = 2 * time.Minute

// forceRemoveVM is vm rm --force: it waits for an operation that holds the
// VM to end (up to forceRemoveWait), then removes the VM whatever its
// state.
func (d *Daemon) forceRemoveVM(ctx context.Context, name string, progress func(api.Progress)) error {
	unlock, err := d.locks.await(ctx, vmKey(name), string(vm.OpForceRemove), forceRemoveWait, func(op string) {
		note(progress, api.StepWait, fmt.Sprintf("waiting for the %s in progress on vm %s to end", op, name))
	})
	if err != nil {
		return err
	}
	v, _, err := d.loadLocked(ctx, name, vm.OpForceRemove, unlock)
	if err != nil {
		return err
	}
	defer unlock()
	return d.removeLocked(ctx, v, true, progress)
}

// removal is one vm rm of a VM whose operation lock is held.
type removal struct {
	d *Daemon
	v *vm.VM
}

// removeLocked declares and runs vm rm: end a VMM that still runs, free
// what the VM held, delete its disks and files, and forget it. It
// finishes even when the client goes away; a failure marks the VM an error
// with what is left, and running rm again finishes it.
func (d *Daemon) removeLocked(ctx context.Context, v *vm.VM, force bool, progress func(api.Progress)) error {
	ctx = context.WithoutCancel(ctx)
	r := &removal{d: d, v: v}
	if !force && r.vmmAlive() {
		return api.Errorf(api.CodeConflict, "vm %s's VMM (pid %d) still runs", v.Name, v.Process.PID).
			WithHint("stop it first (`banger vm stop %[1]s`) or remove it anyway with `banger vm rm --force %[1]s`", v.Name)
	}
	err := d.run(ctx, operation{name: "vm rm", target: v.Name, logs: []string{d.cfg.Paths.DaemonLog()}, steps: []step{
		{name: "mark", message: "recording the removal", do: r.mark, skip: v.State == vm.Removing},
		{name: "kill", message: "ending the VMM", do: r.kill, skip: !r.vmmAlive()},
		{name: "release", message: "releasing the tap, name and sockets", do: r.release},
		{name: "disks", message: "removing disks", do: r.removeDisks, skip: d.deps.Disks == nil},
		{name: "files", message: "removing the vm's directories", do: r.removeFiles},
		{name: "forget", message: "forgetting the vm", do: r.forget},
	}}, progress)
	if err != nil {
		v.Released()
		if serr := d.setState(ctx, v, vm.Error, "removal incomplete: "+err.Error()); serr != nil {
			err = errors.Join(err, serr)
		}
		return fmt.Errorf("removing vm %s: %w (run `banger vm rm %s` again once fixed)", v.Name, err, v.Name)
	}
	return nil
}

func (r *removal) vmmAlive() bool {
	return r.d.deps.VMM != nil && r.v.Process.PID != 0 && r.d.deps.VMM.Alive(r.v.Process)
}

// mark stores the removal before anything is removed: a daemon killed in
// the middle leaves a removing row that reconcile finishes.
func (r *removal) mark(ctx context.Context) error {
	return r.d.setState(ctx, r.v, vm.Removing, "")
}

func (r *removal) kill(ctx context.Context) error { return r.d.deps.VMM.Kill(ctx, r.v) }

func (r *removal) release(ctx context.Context) error { return r.d.freeHost(ctx, r.v) }

func (r *removal) removeDisks(ctx context.Context) error { return r.d.deps.Disks.Remove(ctx, r.v) }

func (r *removal) removeFiles(context.Context) error {
	v := r.v
	return errors.Join(os.RemoveAll(v.Dir), os.RemoveAll(v.StateDir), removeSockets(v.Socket))
}

func (r *removal) forget(ctx context.Context) error {
	r.d.namesMu.Lock()
	err := r.d.store.DeleteVM(ctx, r.v.ID)
	if err == nil && r.d.deps.DNS != nil {
		r.d.deps.DNS.Remove(r.v.Name)
	}
	r.d.namesMu.Unlock()
	if err != nil {
		return err
	}
	r.d.log.Info("vm removed", "vm", r.v.Name)
	r.d.events.publish(api.Event{Type: api.EventVMRemoved, Name: r.v.Name})
	r.d.refreshSSHConfig(ctx)
	return nil
}
