package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"banger/internal/api"
	"banger/internal/disk"
	"banger/internal/guest"
	"banger/internal/image"
	"banger/internal/preflight"
	"banger/internal/vm"
)

// cloning is one vm clone: the source VM (whose lock is held), the new VM
// and the snapshot the new one is restored from.
type cloning struct {
	d        *Daemon
	src, v   *vm.VM
	img      *image.Image
	boot     *booting
	progress func(api.Progress)
	// paused is set once this clone paused a running source; it resumes
	// it when done, whatever happened.
	paused bool
	// state and mem are the snapshot: the source's suspend files when it
	// is suspended, or files the clone writes in its own directory.
	state, mem string
	key        guest.HostKey
	// token is the identity agent's of a template source ("" for none).
	token string
}

// cloneVM forks the running, paused or suspended VM srcName into a new VM
// called name: its memory and device state come from a snapshot of the
// source, its disks are copies of the source's at that moment, and it
// takes its own address, MAC, hostname, machine-id, host key and entropy
// before anyone but the daemon reaches it (docs/snapshots.md). A running
// source is paused meanwhile and runs on afterwards. It returns when the
// clone answers SSH at its own address (the identity step needs SSH, so
// there is no --no-wait). A failure removes the new VM entirely and leaves
// the source as it was.
func (d *Daemon) cloneVM(ctx context.Context, srcName, name string, progress func(api.Progress)) (*vm.VM, error) {
	if err := d.usableName(name); err != nil {
		return nil, err
	}
	if err := d.preflight(ctx, preflight.CreateVM, preflight.StartVM); err != nil {
		return nil, err
	}
	if d.deps.Guest == nil {
		return nil, api.Errorf(api.CodeInvalid, "cloning vm %s: this daemon cannot reach guests over SSH", srcName)
	}
	src, unlockSrc, _, err := d.lockAndLoad(ctx, srcName, vm.OpClone)
	if err != nil {
		return nil, err
	}
	defer unlockSrc()
	unlock, err := d.locks.take(vmKey(name), "clone")
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := d.store.VM(ctx, name); err == nil {
		return nil, api.Errorf(api.CodeConflict, "vm %s already exists", name).
			WithHint("pick another name for the clone, or remove it first with `banger vm rm %s`", name)
	}
	img, err := d.store.Image(ctx, src.ImageName)
	if err != nil {
		return nil, fmt.Errorf("reading image %s of vm %s: %w", src.ImageName, src.Name, err)
	}
	id := newID()
	paths := d.cfg.Paths
	v := &vm.VM{
		ID: id, Name: name, State: vm.Creating, ImageID: src.ImageID, ImageName: src.ImageName,
		CPUs: src.CPUs, MemoryMiB: src.MemoryMiB, DiskBytes: src.DiskBytes,
		Dir: paths.VMDataDir(id), StateDir: paths.VMStateDir(id), Socket: paths.VMSocket(id),
		CreatedAt: d.deps.Now().UTC(), Layout: src.LayoutOrClone(), Base: src.Base,
	}
	c := &cloning{d: d, src: src, v: v, img: &img, progress: progress,
		boot: &booting{d: d, v: v, progress: progress, restored: true}, state: src.SuspendState(), mem: src.SuspendMemory()}
	c.token = agentToken(src)
	identity := "giving the clone the host's time and its own address, names and keys"
	if c.token != "" {
		identity += " (through the template's identity agent)"
	}
	suspended := src.State == vm.Suspended
	if !suspended {
		c.state, c.mem = filepath.Join(v.Dir, "clone.state"), filepath.Join(v.Dir, "clone.mem")
	}
	made := &creation{d: d, v: v, progress: progress}
	// Whatever happens, a source this clone paused runs again, and the
	// snapshot taken for it goes.
	defer c.finish(context.WithoutCancel(ctx))
	err = d.run(ctx, operation{name: "vm clone", target: name, logs: append(d.vmLogs(src), v.Logs()...), steps: []step{
		{name: "record", message: "recording vm " + name, do: made.record, undo: made.forget},
		{name: "dirs", message: "making the vm's directories", do: made.makeDirs, undo: made.removeFiles},
		{name: "pause", message: "pausing vm " + src.Name, do: c.pauseSource, skip: src.State != vm.Running},
		{name: "snapshot", message: "saving the state and memory of vm " + src.Name, do: c.snapshot, skip: suspended},
		{name: "disks", message: "copying the disks of vm " + src.Name, do: c.copyDisks},
		{name: "hostkey", message: "making the clone's host key", do: c.hostKey},
		{name: "network", message: "ensuring the bridge and NAT", do: c.boot.ensureNetwork},
		{name: "tap", message: "creating the clone's tap", do: c.boot.createTAP, undo: c.boot.deleteTAP},
		{name: "restore", message: "restoring the clone from the snapshot", do: c.restore, undo: c.boot.killVMM},
		{name: "resume", message: "letting the clone run", do: c.resume},
		{name: "identity", message: identity, do: c.reidentify},
		{name: "ssh", message: "waiting for SSH at the clone's own address", do: c.boot.waitSSH},
		{name: "running", message: "recording the clone running", do: c.markRunning},
	}}, progress)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// usableName checks a new VM's name as create does.
func (d *Daemon) usableName(name string) error {
	if err := vm.ValidateName(name); err != nil {
		return api.Errorf(api.CodeInvalid, "%v", err)
	}
	if d.deps.DNS != nil {
		if err := d.deps.DNS.Usable(name); err != nil {
			return api.Errorf(api.CodeInvalid, "%v", err)
		}
	}
	return nil
}

// pauseSource drops the daemon's SSH connection to the source (the clone
// would inherit its far end) and pauses it: the clone comes up with the
// source's address and must not meet it on the bridge.
func (c *cloning) pauseSource(ctx context.Context) error {
	c.d.deps.Guest.Forget(c.src)
	s := &suspending{d: c.d, v: c.src}
	if err := s.pause(ctx); err != nil {
		return err
	}
	c.paused = true
	return nil
}

func (c *cloning) snapshot(ctx context.Context) error {
	if err := c.d.deps.VMM.SnapshotTo(ctx, c.src, c.state, c.mem); err != nil {
		return fmt.Errorf("%w (is %s full? `df -h %s` says)", err, c.v.Dir, c.v.Dir)
	}
	return nil
}

func (c *cloning) copyDisks(ctx context.Context) error {
	return c.d.deps.Disks.CopyDisks(ctx, c.src, c.v)
}

func (c *cloning) hostKey(ctx context.Context) error {
	k, err := c.d.deps.Disks.NewHostKey(ctx, c.v)
	c.key = k
	return err
}

// restore starts the clone's VMM from the snapshot on its own TAP and
// disks, paused, and records its process.
func (c *cloning) restore(ctx context.Context) error {
	d, v := c.d, c.v
	if err := os.MkdirAll(filepath.Dir(v.Socket), 0o700); err != nil {
		return fmt.Errorf("creating socket directory: %w", err)
	}
	_ = removeSockets(v.Socket)
	proc, err := d.deps.VMM.RestoreAs(ctx, v, c.img, d.deps.Network.Info(v.IP), c.state, c.mem)
	if err != nil {
		return err
	}
	v.Process = proc
	if err := d.saveVM(ctx, v); err != nil {
		return errors.Join(err, c.boot.killVMM(context.WithoutCancel(ctx)))
	}
	return nil
}

// resume lets the restored clone run. Its row stays creating until it has
// its own identity: a crash before that leaves a VM reconcile stops, never
// one it adopts under its source's address.
func (c *cloning) resume(ctx context.Context) error {
	if err := c.d.deps.VMM.Resume(ctx, c.v); err != nil {
		return err
	}
	c.v.StartedAt = c.d.deps.Now().UTC()
	return nil
}

// markRunning records the clone running, which publishes NEW.vm. It goes
// through starting as a boot does; from there on it is itself, so a crash
// in between leaves a VM reconcile may adopt.
func (c *cloning) markRunning(ctx context.Context) error {
	if err := c.d.setState(ctx, c.v, vm.Starting, ""); err != nil {
		return err
	}
	return c.d.setState(ctx, c.v, vm.Running, "")
}

// reidentify runs banger's re-identification in the clone, which still
// answers at the source's address with the source's host key (the source
// is paused or saved, so nothing else does), then forgets that
// connection: from here on the source's address is the source's again.
func (c *cloning) reidentify(ctx context.Context) error {
	d, v := c.d, c.v
	n := d.deps.Network.Info(v.IP)
	entropy := make([]byte, 64)
	_, _ = rand.Read(entropy)
	id := guest.Identity{
		Hostname: v.Name, Domain: "vm", Address: netip.PrefixFrom(v.IP, n.PrefixLen), Gateway: n.Gateway,
		MAC: v.MAC, MachineID: disk.NewMachineID(), Entropy: entropy, HostKey: c.key,
	}
	if c.token != "" {
		var said string
		err := d.whileVMMRuns(ctx, v, func(ctx context.Context) (err error) {
			said, err = d.deps.Guest.GiveIdentity(ctx, c.src, c.token, id, d.deps.Now)
			return err
		})
		if err == nil {
			d.log.Info("clone re-identified", "vm", v.Name, "from", c.src.Name, "through", "agent", "said", said)
			return nil
		}
		if !errors.Is(err, ErrNoAgent) {
			return fmt.Errorf("re-identifying the clone (at %s, as vm %s): %w", c.src.IP, c.src.Name, err)
		}
		d.log.Warn("no identity agent in a template's clone; re-identifying it over SSH", "vm", v.Name, "template", c.src.Name)
		note(c.progress, "identity", fmt.Sprintf("template %s has no identity agent waiting; going over SSH", c.src.Name))
	}
	defer d.deps.Guest.Forget(c.src)
	var stdout bytes.Buffer
	err := d.whileVMMRuns(ctx, v, func(ctx context.Context) error {
		// Connected first, so that the time the guest's clock is set
		// to is taken right before the command runs.
		if _, err := d.deps.Guest.WaitSSH(ctx, c.src); err != nil {
			return err
		}
		id.Time = d.deps.Now()
		req, key, err := guest.ReidentifyRequest(id)
		if err != nil {
			return err
		}
		return d.runInGuest(ctx, c.src, req, bytes.NewReader(key), &stdout)
	})
	if err != nil {
		return fmt.Errorf("re-identifying the clone (at %s, as vm %s): %w", c.src.IP, c.src.Name, err)
	}
	d.log.Info("clone re-identified", "vm", v.Name, "from", c.src.Name, "said", strings.TrimSpace(stdout.String()))
	return nil
}

// finish removes the snapshot the clone made and lets a source it paused
// run again (reporting, not failing, when that does not work).
func (c *cloning) finish(ctx context.Context) {
	if c.state != c.src.SuspendState() {
		for _, p := range []string{c.state, c.mem} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				c.d.log.Warn("removing a clone's snapshot", "vm", c.v.Name, "err", err)
			}
		}
	}
	if !c.paused {
		return
	}
	s := &suspending{d: c.d, v: c.src}
	if err := s.resume(ctx); err != nil {
		c.d.log.Warn("resuming the source of a clone", "vm", c.src.Name, "err", err)
		if c.progress != nil {
			c.progress(api.Progress{Step: "resume", Message: fmt.Sprintf("vm %s stays paused: %v; `banger vm resume %s`", c.src.Name, err, c.src.Name)})
		}
		return
	}
	c.d.deps.Guest.Forget(c.src)
	c.d.syncClockLater(c.src)
}
