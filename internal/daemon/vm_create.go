package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"banger/internal/api"
	"banger/internal/config"
	"banger/internal/image"
	"banger/internal/preflight"
	"banger/internal/store"
	"banger/internal/vm"
)

// creation is one vm create: the request with its defaults filled in, the
// image, and the VM as it is made.
type creation struct {
	d        *Daemon
	req      api.CreateVMRequest
	img      image.Image
	v        *vm.VM
	warnings []string
	progress func(api.Progress)
}

// createVM makes a VM and boots it unless asked not to. A failure while
// making it removes it again; a failure while booting leaves it stopped
// with the reason; an interrupted boot removes it too.
func (d *Daemon) createVM(ctx context.Context, req api.CreateVMRequest, progress func(api.Progress)) (*vm.VM, []string, error) {
	if err := d.completeCreate(&req); err != nil {
		return nil, nil, err
	}
	if err := d.preflight(ctx, createChecks(req)...); err != nil {
		return nil, nil, err
	}
	if v, done, err := d.fromTemplate(ctx, req, progress); done {
		return v, nil, err
	}
	unlock, err := d.locks.take(vmKey(req.Name), "create")
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	c, err := d.newCreation(ctx, req, progress)
	if err != nil {
		return nil, nil, err
	}
	if err := d.run(ctx, c.operation(), progress); err != nil {
		return nil, nil, err
	}
	if req.NoStart {
		return c.v, c.warnings, nil
	}
	if err := d.boot(ctx, c.v, req.WaitSSH, progress); err != nil {
		return nil, c.warnings, d.firstBootFailed(ctx, c.v, err)
	}
	return c.v, c.warnings, nil
}

// operation declares vm create: record the VM, make its directories and
// disks (the work disk beside the root disk), write its identity.
func (c *creation) operation() operation {
	v, img, req := c.v, &c.img, c.req
	return operation{name: "vm create", target: v.Name, logs: []string{c.d.cfg.Paths.DaemonLog()}, steps: []step{
		{name: "record", message: "recording the vm", do: c.record, undo: c.forget},
		{name: "dirs", message: "making the vm's directories", do: c.makeDirs, undo: c.removeFiles},
		{name: "workdisk", message: "creating the " + vm.FormatSize(v.DiskBytes) + " work disk", do: c.makeWorkDisk, background: true},
		{name: "clone", message: "cloning the root disk from image " + img.Name, do: c.cloneRoot, skip: v.Layout == vm.Layered},
		{name: "growroot", message: "growing the root disk to " + vm.FormatSize(req.RootBytes), do: c.growRoot, skip: v.Layout == vm.Layered || req.RootBytes <= img.SizeBytes},
		{name: "layer", message: "making the " + vm.FormatSize(c.layerSize()) + " layer over image " + img.Name, do: c.makeLayer, skip: v.Layout != vm.Layered},
		{name: "identity", message: "writing hostname, address and keys into the root disk", do: c.writeIdentity},
		{name: "stopped", message: "vm made", do: c.markStopped, skip: !req.NoStart, join: true},
	}}
}

// completeCreate fills in the configured defaults and validates the
// request; nothing has changed when it fails.
func (d *Daemon) completeCreate(req *api.CreateVMRequest) error {
	if err := vm.ValidateName(req.Name); err != nil {
		return api.Errorf(api.CodeInvalid, "%v", err)
	}
	if d.deps.DNS != nil {
		if err := d.deps.DNS.Usable(req.Name); err != nil {
			return api.Errorf(api.CodeInvalid, "%v", err)
		}
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
		req.Image = d.defaultImage(context.Background())
	}
	if err := vm.DefaultLimits.Check(req.CPUs, req.MemoryMiB, req.DiskBytes); err != nil {
		return api.Errorf(api.CodeInvalid, "%v", err)
	}
	return nil
}

// createChecks are the host prerequisites of a create request.
func createChecks(req api.CreateVMRequest) []preflight.Op {
	ops := []preflight.Op{preflight.CreateVM}
	if req.RootBytes != 0 {
		ops = append(ops, preflight.GrowDisk)
	}
	if !req.NoStart {
		ops = append(ops, preflight.StartVM)
	}
	return ops
}

// newCreation checks the request against the database (a free name, an
// image that exists and fits) and describes the VM to make.
func (d *Daemon) newCreation(ctx context.Context, req api.CreateVMRequest, progress func(api.Progress)) (*creation, error) {
	if _, err := d.store.VM(ctx, req.Name); err == nil {
		return nil, api.Errorf(api.CodeConflict, "vm %s already exists", req.Name).
			WithHint("pick another name, or remove it first with `banger vm rm %s`", req.Name)
	}
	img, err := d.store.Image(ctx, req.Image)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFoundImage(req.Image)
	} else if err != nil {
		return nil, err
	}
	if req.RootBytes != 0 && req.RootBytes < img.SizeBytes {
		return nil, api.Errorf(api.CodeInvalid, "root disk size %s is smaller than image %s's %s; root disks can only grow", vm.FormatSize(req.RootBytes), img.Name, vm.FormatSize(img.SizeBytes))
	}
	c := &creation{d: d, req: req, img: img, progress: progress}
	if d.imageStale(&img) {
		c.warnings = append(c.warnings, fmt.Sprintf("image %s is stale: the package manifest changed since it was built; rebuild it with `banger image build`", img.Name))
	}
	id := newID()
	paths := d.cfg.Paths
	c.v = &vm.VM{
		ID: id, Name: req.Name, State: vm.Creating, ImageID: img.ID, ImageName: img.Name,
		CPUs: req.CPUs, MemoryMiB: req.MemoryMiB, DiskBytes: req.DiskBytes,
		Dir: paths.VMDataDir(id), StateDir: paths.VMStateDir(id), Socket: paths.VMSocket(id),
		Hidden: req.Hidden, CreatedAt: d.deps.Now().UTC(), Layout: d.deps.Disks.Layout(), Base: img.Rootfs,
	}
	if req.Hidden && !isTemplate(c.v) {
		// The image builder's VM: its whole root becomes the image, so it
		// takes a copy up front (flattening a layer would cost the same).
		// A warm template keeps the host's layout: its clones copy it.
		c.v.Layout = vm.Clone
	}
	return c, nil
}

func newID() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// record allocates the VM's address and devices and inserts its row. The
// allocation lock makes the address choice and the insert one step.
func (c *creation) record(ctx context.Context) error {
	d, v := c.d, c.v
	d.allocMu.Lock()
	defer d.allocMu.Unlock()
	vms, err := d.store.VMs(ctx)
	if err != nil {
		return err
	}
	var taken []netip.Addr
	for _, o := range vms {
		if o.IP.IsValid() {
			taken = append(taken, o.IP)
		}
	}
	ip, err := d.deps.Network.Allocate(taken)
	if err != nil {
		return api.Errorf(api.CodeConflict, "allocating an address for %s: %v", v.Name, err).
			WithHint("remove unused VMs (`banger vm rm`) or configure a larger subnet")
	}
	v.IP, v.TAP, v.MAC = ip, d.deps.Network.TAPName(v.ID), d.deps.Network.MAC(v.ID)
	if err := d.store.CreateVM(ctx, v); err != nil {
		return err
	}
	d.events.publish(api.Event{Type: api.EventVMCreated, Name: v.Name, VM: d.toAPI(v)})
	d.refreshSSHConfig(ctx)
	return nil
}

// forget deletes the row again, and the name a VM that ran (a clone)
// was given; subscribers saw the VM created.
func (c *creation) forget(ctx context.Context) error {
	if err := c.d.store.DeleteVM(ctx, c.v.ID); err != nil {
		return err
	}
	if c.d.deps.DNS != nil {
		c.d.namesMu.Lock()
		c.d.deps.DNS.Remove(c.v.Name)
		c.d.namesMu.Unlock()
	}
	c.d.events.publish(api.Event{Type: api.EventVMRemoved, Name: c.v.Name})
	c.d.refreshSSHConfig(ctx)
	return nil
}

func (c *creation) makeDirs(context.Context) error {
	for _, dir := range []string{c.v.Dir, c.v.StateDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("creating %s: %w", dir, err)
		}
	}
	return nil
}

// removeFiles removes the disks and directories. Disks.Remove also forgets
// what the disk steps registered elsewhere (the pinned host key); it
// tolerates missing disks.
func (c *creation) removeFiles(ctx context.Context) error {
	v := c.v
	return errors.Join(c.d.deps.Disks.Remove(ctx, v), os.RemoveAll(v.Dir), os.RemoveAll(v.StateDir))
}

func (c *creation) makeWorkDisk(ctx context.Context) error {
	return c.d.deps.Disks.CreateWork(ctx, c.v)
}

func (c *creation) cloneRoot(ctx context.Context) error {
	method, err := c.d.deps.Disks.CloneRoot(ctx, &c.img, c.v)
	if err == nil && c.progress != nil {
		c.progress(api.Progress{Step: "clone", Message: "root disk cloned (" + method + ")"})
	}
	return err
}

// layerSize is how large the VM's root may grow: the image's size, or
// --root-size when larger. The layer is sparse; it costs what is written.
func (c *creation) layerSize() int64 {
	return max(c.img.SizeBytes, c.req.RootBytes)
}

func (c *creation) makeLayer(ctx context.Context) error {
	return c.d.deps.Disks.MakeLayer(ctx, c.v, c.layerSize())
}

func (c *creation) growRoot(ctx context.Context) error {
	return c.d.deps.Disks.GrowRoot(ctx, c.v, c.req.RootBytes)
}

func (c *creation) writeIdentity(ctx context.Context) error {
	return c.d.deps.Disks.WriteIdentity(ctx, c.v, c.d.deps.Network.Info(c.v.IP))
}

func (c *creation) markStopped(ctx context.Context) error {
	return c.d.setState(ctx, c.v, vm.Stopped, "")
}

// firstBootFailed handles a create whose VM was made but did not boot: an
// interrupted create takes the VM back entirely; otherwise it stays
// stopped and the error says how to retry or remove it.
func (d *Daemon) firstBootFailed(ctx context.Context, v *vm.VM, err error) error {
	if ctx.Err() != nil {
		if rerr := d.removeLocked(ctx, v, true, nil); rerr != nil {
			return errors.Join(err, fmt.Errorf("removing the interrupted vm: %w", rerr))
		}
		return err
	}
	var se *StepError
	if errors.As(err, &se) {
		se.Hint = fmt.Sprintf("the vm was made but did not boot; read the logs, then `banger vm start %s` to retry or `banger vm rm %s` to remove it", v.Name, v.Name)
	}
	return err
}

func (d *Daemon) imageStale(img *image.Image) bool { return d.packagesStale(img) }
