package daemon

import (
	"context"
	"io"
	"net/netip"
	"time"

	"banger/internal/api"
	"banger/internal/firecracker"
	"banger/internal/guest"
	"banger/internal/image"
	"banger/internal/imagebuild"
	"banger/internal/preflight"
	"banger/internal/vm"
)

// ErrForcedStop says a VMM was stopped by signal because its guest did
// not power off in time.
var ErrForcedStop = firecracker.ErrForcedStop

// VMM launches and controls VMM processes (Firecracker or banger-vmm-qemu).
type VMM interface {
	// Start launches the VMM for v in its own session, configures and boots
	// it, and returns the VMM's own process identity.
	Start(ctx context.Context, v *vm.VM, img *image.Image, net NetInfo) (vm.Process, error)
	// Shutdown asks the guest to power off, escalating to SIGTERM and
	// SIGKILL after timeout; then the VMM is gone and the error wraps
	// ErrForcedStop.
	Shutdown(ctx context.Context, v *vm.VM, timeout time.Duration) error
	// Kill ends the VMM at once.
	Kill(ctx context.Context, v *vm.VM) error
	// UpdateWorkDrive tells the running VMM that the work disk's file
	// grew, so the guest sees its new size.
	UpdateWorkDrive(ctx context.Context, v *vm.VM) error
	// Alive reports whether the recorded process still runs.
	Alive(p vm.Process) bool
	// Serving maps the API socket of every VMM process on the host to its
	// identity, to find VMMs a crashed daemon never recorded.
	Serving() map[string]vm.Process
	// Pause stops the guest's vCPUs; Resume lets them run again.
	Pause(ctx context.Context, v *vm.VM) error
	Resume(ctx context.Context, v *vm.VM) error
	// Snapshot writes a paused VM's device state and memory to
	// v.SuspendState() and v.SuspendMemory(), synced to disk; on error
	// neither file is left.
	Snapshot(ctx context.Context, v *vm.VM) error
	// Restore starts a new VMM for v from those files, paused (Resume
	// lets it run), and returns its process identity. The files are left
	// as they are.
	Restore(ctx context.Context, v *vm.VM, img *image.Image, net NetInfo) (vm.Process, error)
	// SnapshotTo is Snapshot into other files (a clone's), synced.
	SnapshotTo(ctx context.Context, v *vm.VM, state, mem string) error
	// RestoreAs starts a new VMM for v from another VM's snapshot files:
	// its interface on v's TAP, its drives moved to v's disks, paused.
	RestoreAs(ctx context.Context, v *vm.VM, img *image.Image, net NetInfo, state, mem string) (vm.Process, error)
}

// NetInfo is what the guest needs to know about its network.
type NetInfo struct {
	IP         netip.Addr
	Gateway    netip.Addr
	PrefixLen  int
	Nameserver netip.Addr
}

// Network owns the bridge, the VMs' TAPs, address allocation and NAT.
type Network interface {
	// Ensure makes the bridge and the NAT rules exist.
	Ensure(ctx context.Context) error
	// Allocate picks a free guest address given the ones taken.
	Allocate(taken []netip.Addr) (netip.Addr, error)
	// Info describes the guest network for an address.
	Info(ip netip.Addr) NetInfo
	// TAPName and MAC derive a VM's device names from its id.
	TAPName(id string) string
	MAC(id string) string
	// CreateTAP makes the VM's TAP (v.TAP) on the bridge.
	CreateTAP(ctx context.Context, v *vm.VM) error
	DeleteTAP(ctx context.Context, name string) error
	// TAPs lists the TAP devices banger owns on the host.
	TAPs(ctx context.Context) ([]string, error)
	// Allocation describes the network share the daemon works in, ""
	// when it has none.
	Allocation() string
}

// Disks owns the VMs' disks and the identity written into them.
type Disks interface {
	// CloneRoot makes the VM's root disk from the image's rootfs and
	// returns how (reflink or sparse copy): the Clone layout.
	CloneRoot(ctx context.Context, img *image.Image, v *vm.VM) (string, error)
	// MakeLayer makes the VM's overlay layer of size bytes (sparse) over
	// the image's shared root (v.Base): the Layered layout.
	MakeLayer(ctx context.Context, v *vm.VM, size int64) error
	// Layout is the layout new VMs get.
	Layout() vm.Layout
	// WriteIdentity writes hostname, address, resolver, machine-id, the
	// user's SSH key and a fresh host key into the VM's root (its copy, or
	// its layer), and pins the host key for `banger vm ssh`.
	WriteIdentity(ctx context.Context, v *vm.VM, net NetInfo) error
	CreateWork(ctx context.Context, v *vm.VM) error
	// CopyDisks gives dst copies of src's writable disks (its layer or
	// root copy, and its work disk), reflinked where the file system can.
	CopyDisks(ctx context.Context, src, dst *vm.VM) error
	// NewHostKey makes a host key for v and pins it, for a guest that
	// takes it while it runs (a clone).
	NewHostKey(ctx context.Context, v *vm.VM) (guest.HostKey, error)
	// Grow grows the stopped VM's work disk, file and file system.
	Grow(ctx context.Context, v *vm.VM, size int64) error
	// ExtendWork grows the work disk's file of a running VM; the guest
	// grows the file system.
	ExtendWork(ctx context.Context, v *vm.VM, size int64) error
	// GrowRoot grows the stopped VM's writable root (its layer, or its own
	// copy) to size, file and file system; a smaller size is disk.ErrShrink.
	GrowRoot(ctx context.Context, v *vm.VM, size int64) error
	// CommitRoot turns the stopped VM's root disk into an image's root
	// filesystem at dst, moved when move is set (the image builder's
	// temporary VM) and cloned otherwise (a layered VM's root is flattened:
	// its base with its layer applied), checked and scrubbed of the VM's
	// identity, and returns its dpkg status file (nil when it has none).
	CommitRoot(ctx context.Context, v *vm.VM, dst string, move bool) ([]byte, error)
	// Remove deletes the VM's disks and forgets its host key.
	Remove(ctx context.Context, v *vm.VM) error
}

// Records is the DNS server's view of the running VMs.
type Records interface {
	// Zone is the zone the host resolves the VMs in ("vm.", "alice.vm.").
	Zone() string
	// Usable fails for a VM name whose NAME.ZONE the host could not
	// resolve to it: in root's zone "vm.", the names of users' zones
	// ("alice" for alice.vm.) are theirs.
	Usable(name string) error
	Set(name string, ip netip.Addr)
	Remove(name string)
	Replace(records map[string]netip.Addr)
	Count() int
	Listeners() []api.Listener
}

// Guest reaches into booted guests.
type Guest interface {
	// WaitSSH returns when the guest's SSH server completes a handshake
	// (at once when the daemon already holds a connection to it), with how
	// the connection was made (zero for a connection held already).
	WaitSSH(ctx context.Context, v *vm.VM) (guest.Readiness, error)
	// Connect waits for the guest's SSH server and returns one connection
	// that carries many commands (the image builder's).
	Connect(ctx context.Context, v *vm.VM) (GuestConn, error)
	// Exec starts a command in v's running guest over the one SSH
	// connection the daemon keeps per VM (dialled when first needed, again
	// when it broke) and returns at once.
	Exec(ctx context.Context, v *vm.VM, req guest.ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (api.ExecProcess, error)
	// Forget closes the kept connection to v's guest: it stopped.
	Forget(v *vm.VM)
	// Park sets the kept connection aside while v is suspended; the
	// next WaitSSH after its restore takes it back if it still answers.
	Park(v *vm.VM)
	// ArmClock leaves a command in v's running guest that sets the clock
	// to a time it is given later (SetClock), for a guest about to be
	// saved; DisarmClock ends it.
	ArmClock(ctx context.Context, v *vm.VM) error
	DisarmClock(v *vm.VM)
	// SetClock sets v's clock to now() through the armed command and
	// reports whether it did.
	SetClock(ctx context.Context, v *vm.VM, now func() time.Time) bool
	// GiveIdentity gives a VM just restored from the warm template t its
	// identity through the agent armed in t before it was saved
	// (guest.ArmAgentRequest), which waits at t's address, and returns
	// what the agent said; ErrNoAgent when nothing listens there. The
	// identity's time is taken from now once connected.
	GiveIdentity(ctx context.Context, t *vm.VM, token string, id guest.Identity, now func() time.Time) (string, error)
}

// GuestConn is one SSH connection to a guest.
type GuestConn interface {
	imagebuild.Conn
	Close() error
}

// Preflight checks the host prerequisites of operations and returns an
// error naming what is missing and how to fix it.
type Preflight interface {
	Check(ctx context.Context, ops ...preflight.Op) error
	// Report runs every check once and the host facts, for the doctor.
	Report(ctx context.Context) []api.Check
}

// Bootstrapper builds base images from Debian packages.
type Bootstrapper interface {
	// Bootstrap builds the image described by req into outDir (which it
	// creates; on failure or interruption nothing is left there) and
	// returns it, without an id or a record.
	// The commands it runs and their output go to log.
	Bootstrap(ctx context.Context, req api.BootstrapImageRequest, outDir string, log io.Writer, progress func(api.Progress)) (image.Image, error)
}

// HostResolver routes the host's lookups of the .vm zone to the daemon
// (`banger dns setup`).
type HostResolver interface {
	// Apply sets the routing up (on) or removes it. With
	// systemd-resolved, whose per-link settings need the bridge, a setup
	// before the bridge exists is deferred: Apply says so and changes
	// nothing.
	Apply(ctx context.Context, on bool) (api.DNSSetup, error)
}
