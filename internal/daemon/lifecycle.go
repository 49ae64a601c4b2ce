package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"banger/internal/api"
	"banger/internal/config"
	"banger/internal/image"
	"banger/internal/store"
	"banger/internal/vm"
)

// vmOp serializes operations on one VM.
type vmOp struct {
	ch   chan struct{}
	what string
}

// lockVM takes the operation lock of a VM name, failing fast with a
// conflict when another operation holds it.
func (d *Daemon) lockVM(name, what string) (func(), error) {
	d.opsMu.Lock()
	defer d.opsMu.Unlock()
	if op, ok := d.ops[name]; ok {
		return nil, api.Errorf(api.CodeConflict, "vm %s is busy: %s is in progress", name, op.what).
			WithHint("wait for it to finish, then retry")
	}
	op := &vmOp{ch: make(chan struct{}), what: what}
	d.ops[name] = op
	return func() {
		d.opsMu.Lock()
		delete(d.ops, name)
		d.opsMu.Unlock()
		close(op.ch)
	}, nil
}

func (d *Daemon) busy(name string) bool {
	d.opsMu.Lock()
	defer d.opsMu.Unlock()
	_, ok := d.ops[name]
	return ok
}

// missingLayers names the host layers this daemon was built without.
func (d *Daemon) missingLayers(op string) []string {
	var missing []string
	need := map[string]bool{"vmm": d.deps.VMM == nil, "network": d.deps.Network == nil, "disks": d.deps.Disks == nil}
	for _, k := range []string{"disks", "network", "vmm"} {
		if op == "vm create" && k != "disks" {
			continue
		}
		if need[k] {
			missing = append(missing, k)
		}
	}
	return missing
}

func (d *Daemon) preflight(ctx context.Context, op string) error {
	if missing := d.missingLayers(op); len(missing) > 0 {
		return api.Errorf(api.CodePrecondition, "cannot %s: this bangerd was built without the host layers it needs (%s)", op, strings.Join(missing, ", ")).
			WithHint("this build of banger cannot run VMs yet; `banger doctor` lists what the host lacks")
	}
	if d.deps.Preflight != nil {
		if err := d.deps.Preflight.Check(ctx, op); err != nil {
			return err
		}
	}
	return nil
}

func newID() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// createVM validates the request, records the VM and makes its disks, then
// boots it unless asked not to. A failure while making the VM removes it
// again; a failure while booting leaves it stopped with the reason.
func (d *Daemon) createVM(ctx context.Context, req api.CreateVMRequest, progress func(api.Progress)) (*vm.VM, []string, error) {
	if err := vm.ValidateName(req.Name); err != nil {
		return nil, nil, api.Errorf(api.CodeInvalid, "%v", err)
	}
	if req.CPUs == 0 {
		req.CPUs = d.cfg.DefaultCPUs
	}
	if req.MemoryMiB == 0 {
		req.MemoryMiB = int(config.MustSize(d.cfg.DefaultMemory) / vm.MiB)
	}
	if req.DiskBytes == 0 {
		req.DiskBytes = config.MustSize(d.cfg.DefaultDisk)
	}
	if req.Image == "" {
		req.Image = d.cfg.DefaultImage
	}
	if err := vm.DefaultLimits.Check(req.CPUs, req.MemoryMiB, req.DiskBytes); err != nil {
		return nil, nil, api.Errorf(api.CodeInvalid, "%v", err)
	}
	op := "vm create"
	if !req.NoStart {
		op = "vm start"
	}
	if err := d.preflight(ctx, op); err != nil {
		return nil, nil, err
	}
	unlock, err := d.lockVM(req.Name, "create")
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	if _, err := d.store.VM(ctx, req.Name); err == nil {
		return nil, nil, api.Errorf(api.CodeConflict, "vm %s already exists", req.Name).
			WithHint("pick another name, or remove it first with `banger vm rm %s`", req.Name)
	}
	img, err := d.store.Image(ctx, req.Image)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, notFoundImage(req.Image)
	} else if err != nil {
		return nil, nil, err
	}
	var warnings []string
	if d.imageStale(&img) {
		warnings = append(warnings, fmt.Sprintf("image %s is stale: the package manifest changed since it was built; rebuild it with `banger image build`", img.Name))
	}

	id := newID()
	paths := d.cfg.Paths
	v := &vm.VM{
		ID: id, Name: req.Name, State: vm.Creating, ImageID: img.ID, ImageName: img.Name,
		CPUs: req.CPUs, MemoryMiB: req.MemoryMiB, DiskBytes: req.DiskBytes,
		Dir: paths.VMDataDir(id), StateDir: paths.VMStateDir(id), Socket: paths.VMSocket(id),
		CreatedAt: d.deps.Now().UTC(),
	}
	v.Hidden = req.Hidden
	if req.RootBytes != 0 && req.RootBytes < img.SizeBytes {
		return nil, nil, api.Errorf(api.CodeInvalid, "root disk size %s is smaller than image %s's %s; root disks can only grow", vm.FormatSize(req.RootBytes), img.Name, vm.FormatSize(img.SizeBytes))
	}
	v.Process.Socket = v.Socket
	p := &plan{op: "vm create", vm: v.Name, log: d.log, progress: progress, logs: []string{paths.DaemonLog()}}

	err = p.do(ctx, "record", "recording the vm", func(ctx context.Context) error {
		d.allocMu.Lock()
		defer d.allocMu.Unlock()
		vms, err := d.store.VMs(ctx)
		if err != nil {
			return err
		}
		var taken []string
		for _, o := range vms {
			if o.IP != "" {
				taken = append(taken, o.IP)
			}
		}
		ip, err := d.deps.Network.Allocate(taken)
		if err != nil {
			return api.Errorf(api.CodeConflict, "allocating an address for %s: %v", v.Name, err).
				WithHint("remove unused VMs (`banger vm rm`) or configure a larger subnet")
		}
		v.IP = ip
		v.TAP = d.deps.Network.TAPName(v.ID)
		v.MAC = d.deps.Network.MAC(v.ID)
		return d.store.CreateVM(ctx, v)
	}, func(ctx context.Context) error { return d.store.DeleteVM(ctx, v.ID) })
	if err != nil {
		return nil, nil, d.abort(p, err)
	}
	d.events.publish(api.Event{Type: api.EventVMCreated, Name: v.Name, VM: d.toAPI(v)})
	err = p.do(ctx, "dirs", "making the vm's directories", func(context.Context) error {
		for _, dir := range []string{v.Dir, v.StateDir} {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fmt.Errorf("creating %s: %w", dir, err)
			}
		}
		return nil
	}, func(ctx context.Context) error {
		// Disks.Remove also forgets what the disk steps registered
		// elsewhere (the pinned host key); it tolerates missing disks.
		return errors.Join(d.deps.Disks.Remove(ctx, v), os.RemoveAll(v.Dir), os.RemoveAll(v.StateDir))
	})
	// The work disk does not depend on the root disk: make it while the
	// root disk is cloned and written. Every path below waits for it.
	workDone := make(chan error, 1)
	if err == nil {
		go func() { workDone <- d.deps.Disks.CreateWork(ctx, v) }()
	} else {
		workDone <- nil
	}
	if err == nil {
		err = p.do(ctx, "clone", "cloning the root disk from image "+img.Name, func(ctx context.Context) error {
			method, err := d.deps.Disks.CloneRoot(ctx, &img, v)
			if err == nil {
				p.emit(api.Progress{Step: "clone", Message: "root disk cloned (" + method + ")"})
			}
			return err
		}, nil)
	}
	if err == nil && req.RootBytes > img.SizeBytes {
		err = p.do(ctx, "growroot", "growing the root disk to "+vm.FormatSize(req.RootBytes), func(ctx context.Context) error {
			return d.deps.Disks.GrowRoot(ctx, v, req.RootBytes)
		}, nil)
	}
	if err == nil {
		err = p.do(ctx, "identity", "writing hostname, address and keys into the root disk", func(ctx context.Context) error {
			return d.deps.Disks.WriteIdentity(ctx, v, d.deps.Network.Info(v.IP))
		}, nil)
	}
	workErr := <-workDone
	if err == nil {
		err = p.do(ctx, "workdisk", "creating the "+vm.FormatSize(v.DiskBytes)+" work disk", func(ctx context.Context) error {
			return workErr
		}, nil)
	}
	// A VM that boots next goes from creating straight to running (one
	// database write less); one made stopped is recorded so now.
	if err == nil && req.NoStart {
		err = p.do(ctx, "stopped", "vm made", func(ctx context.Context) error {
			v.State = vm.Stopped
			return d.store.UpdateVM(ctx, v)
		}, nil)
	}
	if err != nil {
		err = d.abort(p, err)
		// Subscribers saw it created; the rollback removed it again.
		d.events.publish(api.Event{Type: api.EventVMRemoved, Name: v.Name})
		return nil, nil, err
	}
	p.commit()
	if req.NoStart {
		d.events.publish(api.Event{Type: api.EventVMStopped, Name: v.Name, VM: d.toAPI(v)})
		return v, warnings, nil
	}
	if err := d.startLocked(ctx, v, &img, req.WaitSSH, progress); err != nil {
		if ctx.Err() != nil {
			// The user interrupted the create: take it back entirely.
			if rerr := d.removeLocked(ctx, v, true, nil); rerr != nil {
				return nil, warnings, errors.Join(err, fmt.Errorf("removing the interrupted vm: %w", rerr))
			}
			return nil, warnings, err
		}
		var se *StepError
		if errors.As(err, &se) {
			se.Hint = fmt.Sprintf("the vm was made but did not boot; read the logs, then `banger vm start %s` to retry or `banger vm rm %s` to remove it", v.Name, v.Name)
		}
		return nil, warnings, err
	}
	return v, warnings, nil
}

// abort rolls a failed plan back and returns the step error, with any
// rollback failure attached.
func (d *Daemon) abort(p *plan, err error) error {
	if rerr := p.rollback(); rerr != nil {
		return errors.Join(err, fmt.Errorf("cleaning up after the failure: %w (reconcile will retry)", rerr))
	}
	return err
}

func (d *Daemon) imageStale(img *image.Image) bool { return d.packagesStale(img) }

// startVM boots a stopped VM.
func (d *Daemon) startVM(ctx context.Context, name string, waitSSH bool, progress func(api.Progress)) (*vm.VM, error) {
	if err := d.preflight(ctx, "vm start"); err != nil {
		return nil, err
	}
	v, unlock, err := d.lockAndLoad(ctx, name, "start")
	if err != nil {
		return nil, err
	}
	defer unlock()
	if v.State == vm.Running {
		return v, nil
	}
	if err := vm.Transition(v.Name, v.State, vm.Starting); err != nil {
		return nil, api.Errorf(api.CodeConflict, "%v", err)
	}
	img, err := d.store.Image(ctx, v.ImageName)
	if err != nil {
		return nil, err
	}
	return v, d.startLocked(ctx, v, &img, waitSSH, progress)
}

// startLocked runs the boot steps for v, whose operation lock is held.
func (d *Daemon) startLocked(ctx context.Context, v *vm.VM, img *image.Image, waitSSH bool, progress func(api.Progress)) error {
	p := &plan{op: "vm start", vm: v.Name, log: d.log, progress: progress, logs: append(v.Logs(), d.cfg.Paths.DaemonLog())}
	net := d.deps.Network.Info(v.IP)
	err := p.do(ctx, "network", "ensuring the bridge and NAT", func(ctx context.Context) error {
		if err := d.deps.Network.Ensure(ctx); err != nil {
			return err
		}
		d.netReady.Store(true)
		return nil
	}, nil)
	if err == nil {
		err = p.do(ctx, "tap", "creating tap "+v.TAP, func(ctx context.Context) error {
			return d.deps.Network.CreateTAP(ctx, v)
		}, func(ctx context.Context) error { return d.deps.Network.DeleteTAP(ctx, v.TAP) })
	}
	if err == nil {
		err = p.do(ctx, "boot", "starting the VMM and booting the guest", func(ctx context.Context) error {
			// The runtime directory is a tmpfs on most hosts: recreate it
			// after a reboot.
			if err := os.MkdirAll(filepath.Dir(v.Socket), 0o700); err != nil {
				return fmt.Errorf("creating socket directory: %w", err)
			}
			_ = removeSockets(v.Socket)
			proc, err := d.deps.VMM.Start(ctx, v, img, net)
			if err != nil {
				return err
			}
			v.Process = proc
			v.State = vm.Running
			v.Reason = ""
			v.StartedAt = d.deps.Now().UTC()
			return d.store.UpdateVM(ctx, v)
		}, func(ctx context.Context) error {
			err := d.deps.VMM.Kill(ctx, v)
			_ = os.Remove(v.Socket)
			return err
		})
	}
	if err == nil && d.deps.DNS != nil {
		d.deps.DNS.Set(v.Name, v.IP)
	}
	if err == nil && waitSSH && d.deps.Guest != nil {
		err = p.do(ctx, "ssh", "waiting for SSH on "+v.IP, func(ctx context.Context) error {
			return d.deps.Guest.WaitSSH(ctx, v)
		}, nil)
	}
	if err != nil {
		if d.deps.DNS != nil {
			d.deps.DNS.Remove(v.Name)
		}
		err = d.abort(p, err)
		v.State = vm.Stopped
		v.Reason = err.Error()
		v.Process = vm.Process{Socket: v.Socket}
		v.StartedAt = time.Time{}
		if uerr := d.store.UpdateVM(context.WithoutCancel(ctx), v); uerr != nil {
			err = errors.Join(err, uerr)
		}
		d.events.publish(api.Event{Type: api.EventVMStopped, Name: v.Name, VM: d.toAPI(v)})
		return err
	}
	p.commit()
	d.events.publish(api.Event{Type: api.EventVMStarted, Name: v.Name, VM: d.toAPI(v)})
	return nil
}

// stopVM shuts a VM down gracefully (kill=false) or at once (kill=true).
func (d *Daemon) stopVM(ctx context.Context, name string, kill bool, timeout time.Duration, progress func(api.Progress)) (*vm.VM, error) {
	what := "stop"
	if kill {
		what = "kill"
	}
	v, unlock, err := d.lockAndLoad(ctx, name, what)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if v.State == vm.Stopped {
		return v, nil
	}
	if err := d.stopLocked(ctx, v, kill, timeout, progress); err != nil {
		return nil, err
	}
	return v, nil
}

func (d *Daemon) stopLocked(ctx context.Context, v *vm.VM, kill bool, timeout time.Duration, progress func(api.Progress)) error {
	if timeout <= 0 {
		timeout = d.stopTimeout
	}
	op := "vm stop"
	if kill {
		op = "vm kill"
	}
	p := &plan{op: op, vm: v.Name, log: d.log, progress: progress, logs: append(v.Logs(), d.cfg.Paths.DaemonLog())}
	if v.State == vm.Running {
		v.State = vm.Stopping
		if err := d.store.UpdateVM(ctx, v); err != nil {
			return err
		}
		d.events.publish(api.Event{Type: api.EventVMUpdated, Name: v.Name, VM: d.toAPI(v)})
	}
	// Stopping must finish even when the client goes away.
	ctx = context.WithoutCancel(ctx)
	var err error
	if d.deps.VMM != nil && v.Process.PID != 0 {
		if kill {
			err = p.do(ctx, "kill", "killing the VMM", func(ctx context.Context) error { return d.deps.VMM.Kill(ctx, v) }, nil)
		} else {
			err = p.do(ctx, "shutdown", fmt.Sprintf("asking the guest to power off (up to %s)", timeout), func(ctx context.Context) error {
				return d.deps.VMM.Shutdown(ctx, v, timeout)
			}, nil)
		}
	}
	if err != nil {
		v.State = vm.Error
		v.Reason = err.Error()
		_ = d.store.UpdateVM(ctx, v)
		d.events.publish(api.Event{Type: api.EventVMError, Name: v.Name, VM: d.toAPI(v)})
		return err
	}
	return d.release(ctx, v, "")
}

// release frees what a running VM holds on the host (TAP, DNS record,
// socket) and records it stopped, with reason when it did not stop on
// request.
func (d *Daemon) release(ctx context.Context, v *vm.VM, reason string) error {
	var errs []error
	if d.deps.DNS != nil {
		d.deps.DNS.Remove(v.Name)
	}
	if d.deps.Network != nil && v.TAP != "" {
		if err := d.deps.Network.DeleteTAP(ctx, v.TAP); err != nil {
			errs = append(errs, fmt.Errorf("deleting tap %s: %w", v.TAP, err))
		}
	}
	if err := removeSockets(v.Socket); err != nil {
		errs = append(errs, err)
	}
	d.forgetStats(v.Process.PID)
	v.State = vm.Stopped
	v.Reason = reason
	v.Process = vm.Process{Socket: v.Socket}
	v.StartedAt = time.Time{}
	if len(errs) > 0 {
		v.Reason = strings.TrimSpace(reason + "; " + errors.Join(errs...).Error())
	}
	if err := d.store.UpdateVM(ctx, v); err != nil {
		errs = append(errs, err)
	}
	d.events.publish(api.Event{Type: api.EventVMStopped, Name: v.Name, VM: d.toAPI(v)})
	return errors.Join(errs...)
}

// removeVM deletes a VM and everything banger made for it.
func (d *Daemon) removeVM(ctx context.Context, name string, force bool, progress func(api.Progress)) error {
	v, unlock, err := d.lockAndLoad(ctx, name, "rm")
	if err != nil {
		return err
	}
	defer unlock()
	return d.removeLocked(ctx, v, force, progress)
}

// removeLocked removes v, whose operation lock is held.
func (d *Daemon) removeLocked(ctx context.Context, v *vm.VM, force bool, progress func(api.Progress)) error {
	ctx = context.WithoutCancel(ctx)
	if v.State == vm.Running || v.State == vm.Stopping || v.State == vm.Starting || v.Process.PID != 0 {
		alive := d.deps.VMM != nil && d.deps.VMM.Alive(v.Process)
		if alive && !force {
			return api.Errorf(api.CodeConflict, "vm %s is running", v.Name).
				WithHint("stop it first (`banger vm stop %s`) or remove it anyway with `banger vm rm --force %s`", v.Name, v.Name)
		}
		if alive {
			if err := d.stopLocked(ctx, v, true, 0, progress); err != nil {
				return err
			}
		} else if err := d.release(ctx, v, ""); err != nil {
			d.log.Warn("releasing vm before removal", "vm", v.Name, "err", err)
		}
	}
	p := &plan{op: "vm rm", vm: v.Name, log: d.log, progress: progress, logs: []string{d.cfg.Paths.DaemonLog()}}
	var errs []error
	if d.deps.Network != nil && v.TAP != "" {
		errs = append(errs, d.deps.Network.DeleteTAP(ctx, v.TAP))
	}
	if d.deps.Disks != nil {
		errs = append(errs, p.do(ctx, "disks", "removing disks", func(ctx context.Context) error { return d.deps.Disks.Remove(ctx, v) }, nil))
	}
	errs = append(errs, os.RemoveAll(v.Dir), os.RemoveAll(v.StateDir), removeSockets(v.Socket))
	if err := errors.Join(errs...); err != nil {
		v.State = vm.Error
		v.Reason = "removal incomplete: " + err.Error()
		_ = d.store.UpdateVM(ctx, v)
		return fmt.Errorf("removing vm %s: %w (run `banger vm rm %s` again once fixed)", v.Name, err, v.Name)
	}
	if err := d.store.DeleteVM(ctx, v.ID); err != nil {
		return err
	}
	d.log.Info("vm removed", "vm", v.Name)
	d.events.publish(api.Event{Type: api.EventVMRemoved, Name: v.Name})
	return nil
}

// resizeVM grows a stopped VM's work disk.
func (d *Daemon) resizeVM(ctx context.Context, name string, size int64, progress func(api.Progress)) (*vm.VM, error) {
	if err := vm.DefaultLimits.Check(1, vm.DefaultLimits.MinMemoryMiB, size); err != nil {
		return nil, api.Errorf(api.CodeInvalid, "%v", err)
	}
	if err := d.preflight(ctx, "vm create"); err != nil {
		return nil, err
	}
	v, unlock, err := d.lockAndLoad(ctx, name, "resize")
	if err != nil {
		return nil, err
	}
	defer unlock()
	if v.State != vm.Stopped {
		return nil, api.Errorf(api.CodeConflict, "vm %s is %s; the work disk can only grow while it is stopped", v.Name, v.State).
			WithHint("`banger vm stop %s` first", v.Name)
	}
	if size < v.DiskBytes {
		return nil, api.Errorf(api.CodeInvalid, "cannot shrink the work disk of %s from %s to %s", v.Name, vm.FormatSize(v.DiskBytes), vm.FormatSize(size)).
			WithHint("shrinking could lose data; pick a size of at least %s", vm.FormatSize(v.DiskBytes))
	}
	if size == v.DiskBytes {
		return v, nil
	}
	p := &plan{op: "vm resize", vm: v.Name, log: d.log, progress: progress, logs: []string{d.cfg.Paths.DaemonLog()}}
	if err := p.do(ctx, "grow", "growing the work disk to "+vm.FormatSize(size), func(ctx context.Context) error {
		return d.deps.Disks.Grow(ctx, v, size)
	}, nil); err != nil {
		return nil, err
	}
	v.DiskBytes = size
	if err := d.store.UpdateVM(ctx, v); err != nil {
		return nil, err
	}
	d.events.publish(api.Event{Type: api.EventVMUpdated, Name: v.Name, VM: d.toAPI(v)})
	return v, nil
}

// lockAndLoad takes a VM's operation lock and reads the VM; the caller
// releases the lock with unlock.
func (d *Daemon) lockAndLoad(ctx context.Context, name, what string) (*vm.VM, func(), error) {
	unlock, err := d.lockVM(name, what)
	if err != nil {
		return nil, nil, err
	}
	v, err := d.loadVM(ctx, name)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return v, unlock, nil
}

func (d *Daemon) loadVM(ctx context.Context, name string) (*vm.VM, error) {
	v, err := d.store.VM(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFoundVM(name)
	}
	if err != nil {
		return nil, err
	}
	return &v, nil
}
