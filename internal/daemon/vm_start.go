package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"banger/internal/api"
	"banger/internal/guest"
	"banger/internal/image"
	"banger/internal/preflight"
	"banger/internal/vm"
)

// startVM boots a stopped VM; a running one is left as it is.
func (d *Daemon) startVM(ctx context.Context, name string, waitSSH bool, progress func(api.Progress)) (*vm.VM, error) {
	if err := d.preflight(ctx, preflight.StartVM); err != nil {
		return nil, err
	}
	v, unlock, noop, err := d.lockAndLoad(ctx, name, vm.OpStart)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if noop {
		return v, nil
	}
	return v, d.boot(ctx, v, waitSSH, progress)
}

// restartVM stops a VM (when it runs) and boots it again, under one lock.
func (d *Daemon) restartVM(ctx context.Context, name string, waitSSH bool, progress func(api.Progress)) (*vm.VM, error) {
	if err := d.preflight(ctx, preflight.StartVM); err != nil {
		return nil, err
	}
	v, unlock, _, err := d.lockAndLoad(ctx, name, vm.OpRestart)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if v.State != vm.Stopped {
		if err := d.halt(ctx, v, false, 0, progress); err != nil {
			return nil, err
		}
	}
	return v, d.boot(ctx, v, waitSSH, progress)
}

// booting is one boot of a VM whose operation lock is held.
type booting struct {
	d        *Daemon
	v        *vm.VM
	progress func(api.Progress)
	// restored says the guest comes from saved state, not a cold boot:
	// its console stays quiet.
	restored bool
}

// boot declares and runs vm start: mark the VM starting, make sure the
// bridge and NAT exist, make its TAP, start the VMM (or, for a suspended
// VM, restore it from its saved state, drop the files and let it run),
// publish its name and (when asked) wait for SSH. A failure leaves the VM
// stopped with the reason, or suspended while its saved state is intact.
func (d *Daemon) boot(ctx context.Context, v *vm.VM, waitSSH bool, progress func(api.Progress)) error {
	err := d.bootOnce(ctx, v, waitSSH, progress)
	if errors.Is(err, errBootStalled) && ctx.Err() == nil {
		// The failed boot was undone (VMM, TAP) and the VM is stopped.
		d.log.Warn("guest stalled while booting; booting it once more", "vm", v.Name, "err", err)
		note(progress, "boot", fmt.Sprintf("the guest stopped booting (its console printed nothing for %s); stopped it, booting it once more", d.bootStall))
		err = d.bootOnce(ctx, v, waitSSH, progress)
	}
	return err
}

func (d *Daemon) bootOnce(ctx context.Context, v *vm.VM, waitSSH bool, progress func(api.Progress)) error {
	resume := v.State == vm.Suspended
	b := &booting{d: d, v: v, progress: progress, restored: resume}
	noSSH := !waitSSH || d.deps.Guest == nil
	err := d.run(ctx, operation{name: "vm start", target: v.Name, logs: d.vmLogs(v), steps: []step{
		{name: "starting", message: "marking the vm starting", do: b.markStarting},
		{name: "network", message: "ensuring the bridge and NAT", do: b.ensureNetwork},
		{name: "tap", message: "creating tap " + v.TAP, do: b.createTAP, undo: b.deleteTAP},
		{name: "boot", message: "starting the VMM and booting the guest", do: b.startVMM, undo: b.killVMM, skip: resume},
		{name: "restore", message: "restoring the guest from its saved state", do: b.restoreVMM, undo: b.killVMM, skip: !resume},
		{name: "discard", message: "removing the saved state", do: b.discardSuspend, skip: !resume},
		{name: "resume", message: "resuming the guest", do: b.resumeRestored, skip: !resume},
		{name: "forwards", message: "starting the port forwards", do: b.startForwards},
		{name: "ssh", message: "waiting for SSH on " + v.IP.String(), do: b.waitSSH, skip: noSSH},
		{name: "init", message: "waiting for the guest's init to accept commands", do: b.waitInit, skip: resume || noSSH},
		{name: "clock", message: "setting the guest's clock to the host's", do: b.syncClock, skip: !resume || noSSH},
	}}, progress)
	if err == nil && resume && noSSH {
		// Nobody waits for the guest: set its clock once it answers.
		d.syncClockLater(v)
	}
	if err != nil && (v.State == vm.Starting || v.State == vm.Running) {
		v.Released()
		to := vm.Stopped
		if resume && hasSuspend(v) {
			to = vm.Suspended
		}
		if serr := d.setState(context.WithoutCancel(ctx), v, to, err.Error()); serr != nil {
			err = errors.Join(err, serr)
		}
	}
	return err
}

func (b *booting) markStarting(ctx context.Context) error {
	return b.d.setState(ctx, b.v, vm.Starting, "")
}

func (b *booting) ensureNetwork(ctx context.Context) error { return b.d.networkUp(ctx) }

func (b *booting) createTAP(ctx context.Context) error { return b.d.deps.Network.CreateTAP(ctx, b.v) }

func (b *booting) deleteTAP(ctx context.Context) error {
	return b.d.deps.Network.DeleteTAP(ctx, b.v.TAP)
}

// startVMM launches the VMM and records its process with the running
// state in one write.
func (b *booting) startVMM(ctx context.Context) error {
	d, v := b.d, b.v
	img, err := b.prepareVMM(ctx)
	if err != nil {
		return err
	}
	if err := d.noteBootStart(v); err != nil {
		// The boot goes on without a timeline; none of an older boot's
		// stays to mislead.
		d.log.Warn("recording the boot's start", "vm", v.Name, "err", err)
		_ = os.Remove(v.BootFile())
	}
	proc, err := d.deps.VMM.Start(ctx, v, img, d.deps.Network.Info(v.IP))
	if err != nil {
		return err
	}
	v.Process = proc
	v.StartedAt = d.deps.Now().UTC()
	if err := d.setState(ctx, v, vm.Running, ""); err != nil {
		// Unrecorded, the VMM would have no owner: stop it now.
		return errors.Join(err, b.killVMM(context.WithoutCancel(ctx)))
	}
	return nil
}

// prepareVMM makes the socket directory (the runtime directory is a tmpfs
// on most hosts: it is gone after a reboot), clears stale sockets and
// reads the VM's image.
func (b *booting) prepareVMM(ctx context.Context) (*image.Image, error) {
	v := b.v
	if err := os.MkdirAll(filepath.Dir(v.Socket), 0o700); err != nil {
		return nil, fmt.Errorf("creating socket directory: %w", err)
	}
	img, err := b.d.store.Image(ctx, v.ImageName)
	if err != nil {
		return nil, fmt.Errorf("reading image %s of vm %s: %w", v.ImageName, v.Name, err)
	}
	_ = removeSockets(v.Socket)
	return &img, nil
}

func (b *booting) killVMM(ctx context.Context) error {
	err := b.d.deps.VMM.Kill(ctx, b.v)
	return errors.Join(err, removeSockets(b.v.Socket))
}

// startForwards starts the VM's forwards. One that cannot start (its port
// was taken while the VM was stopped) is reported, not fatal: the VM runs,
// and the forward stays recorded for the next start.
func (b *booting) startForwards(ctx context.Context) error {
	if err := b.d.startForwards(ctx, b.v); err != nil {
		b.d.log.Warn("starting forwards", "vm", b.v.Name, "err", err)
		if b.progress != nil {
			b.progress(api.Progress{Step: "forwards", Message: "not all forwards started: " + err.Error()})
		}
	}
	return nil
}

// waitInit waits, after a cold boot, until the guest's init accepts
// commands (guest.InitReadyScript): sshd starts before systemd. A guest
// whose init never does is reported, not failed: SSH answers, and the
// guest is as usable as its init lets it be.
func (b *booting) waitInit(ctx context.Context) error {
	req := guest.ExecRequest{Argv: []string{"sh", "-c", guest.InitReadyScript}}
	err := b.d.whileVMMRuns(ctx, b.v, func(ctx context.Context) error {
		return b.d.runInGuest(ctx, b.v, req, nil, io.Discard)
	})
	if err == nil || ctx.Err() != nil || errors.Is(err, errVMMExited) {
		return err
	}
	b.d.log.Warn("waiting for the guest's init", "vm", b.v.Name, "err", err)
	note(b.progress, "init", fmt.Sprintf("the guest answers SSH but its init does not accept commands yet (%v); its console log %s says how far it booted", err, b.v.ConsoleLog()))
	return nil
}

func (b *booting) waitSSH(ctx context.Context) error {
	watch := b.d.whileBooting
	if b.restored {
		watch = b.d.whileVMMRuns // a restored guest prints nothing
	}
	return watch(ctx, b.v, func(ctx context.Context) error {
		ready, err := b.d.deps.Guest.WaitSSH(ctx, b.v)
		if err != nil {
			return err
		}
		b.d.noteSSH(b.v, ready)
		return nil
	})
}
