// Package daemontest provides stateful fakes of the daemon's host layers
// (VMM, network, disks, DNS, guest) and a helper that runs a real daemon
// with them on a temporary socket. It is for tests and benchmarks only and
// is never linked into the shipped bangerd.
package daemontest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"banger/internal/api"
	"banger/internal/daemon"
	"banger/internal/disk"
	"banger/internal/guest"
	"banger/internal/image"
	"banger/internal/vm"
)

// Host is the fake host shared by all fake layers: the state a real host
// would hold (TAPs, processes, disks, DNS records), plus failure injection.
type Host struct {
	mu      sync.Mutex
	armed   map[string]bool   // VM id → a clock armed (Guest.ArmClock)
	taps    map[string]string // name → mac
	procs   map[int]bool      // pid → alive
	sockets map[int]string    // pid → API socket
	nextPID int
	disks   map[string]int64 // path → size
	records map[string]string
	calls   []string
	failAt  map[string]error // operation name → error to return once
	bridge  bool
	pause   chan struct{}
	blockAt map[string]chan struct{} // operation name → signalled when blocked
	console []byte                   // what a booting guest prints, when set
	booted  map[string]time.Time     // VM id → when its fake VMM started
}

// SetConsole makes every boot print data on the guest console, as a real
// guest's kernel, initramfs and systemd would.
func (h *Host) SetConsole(data []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.console = append([]byte(nil), data...)
}

// Fake boots take this long before the guest kernel starts, and SSH's
// handshake this long once sshd accepts.
const (
	fakeVMMDelay       = 300 * time.Millisecond
	fakeHandshakeDelay = 400 * time.Millisecond
)

// NewHost returns an empty fake host.
func NewHost() *Host {
	return &Host{taps: map[string]string{}, procs: map[int]bool{}, sockets: map[int]string{}, nextPID: 100000, disks: map[string]int64{}, records: map[string]string{}, failAt: map[string]error{}, blockAt: map[string]chan struct{}{}, booted: map[string]time.Time{}}
}

// FailNext makes the next call of op ("clone", "layer", "identity", "workdisk",
// "tap", "boot", "shutdown", "grow", "ssh") fail with err; "op arg" (as
// "exec sh") only the next call whose first argument is arg.
func (h *Host) FailNext(op string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failAt[op] = err
}

// BlockNext makes the next call of op ("clone", "layer", "boot", "ssh") wait until
// its context ends, as a slow host would while the user presses Ctrl-C. The
// returned channel receives once the call is blocked.
func (h *Host) BlockNext(op string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := make(chan struct{}, 1)
	h.blockAt[op] = ch
	return ch
}

// block waits for ctx to end when op was set up to block.
func (h *Host) block(ctx context.Context, op string) error {
	h.mu.Lock()
	ch, ok := h.blockAt[op]
	delete(h.blockAt, op)
	h.mu.Unlock()
	if !ok {
		return nil
	}
	ch <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

func (h *Host) record(op string, args ...string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, strings.TrimSpace(op+" "+strings.Join(args, " ")))
	key := op
	if len(args) > 0 {
		// "exec sh" fails only an exec of sh, not one a background
		// task makes meanwhile.
		if _, ok := h.failAt[op+" "+args[0]]; ok {
			key = op + " " + args[0]
		}
	}
	if err, ok := h.failAt[key]; ok {
		delete(h.failAt, key)
		return err
	}
	return nil
}

// Calls lists the layer calls made so far, e.g. "tap bg-abc".
func (h *Host) Calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls...)
}

// State renders the fake host as one canonical string for diffs.
func (h *Host) State() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var lines []string
	for t := range h.taps {
		lines = append(lines, "tap "+t)
	}
	for p, alive := range h.procs {
		if alive {
			lines = append(lines, fmt.Sprintf("vmm %d", p))
		}
	}
	for d, size := range h.disks {
		lines = append(lines, fmt.Sprintf("disk %s %d", d, size))
	}
	for n, ip := range h.records {
		lines = append(lines, "dns "+n+" "+ip)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// KillVMM makes a fake VMM process die, as if it crashed.
func (h *Host) KillVMM(pid int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.procs[pid] = false
}

// AddStrayTAP adds a TAP that no VM owns, as a crash would leave behind.
func (h *Host) AddStrayTAP(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.taps[name] = "02:00:00:00:00:ff"
}

// Layers returns daemon dependencies backed by this host.
func (h *Host) Layers() daemon.Deps {
	return daemon.Deps{VMM: &VMM{h}, Network: &Network{h, netip.MustParsePrefix("10.213.0.0/24")}, Disks: &Disks{h}, DNS: &DNS{h}, Guest: &Guest{h},
		Bootstrap: &Bootstrapper{h}, Resolver: &Resolver{h}, Stats: stats{}}
}

// VMM is a fake VMM driver.
type VMM struct{ h *Host }

// Start implements daemon.VMM.
func (f *VMM) Start(ctx context.Context, v *vm.VM, img *image.Image, n daemon.NetInfo) (vm.Process, error) {
	if err := f.h.record("boot", v.Name, img.Name, n.IP.String()); err != nil {
		return vm.Process{}, err
	}
	if err := f.h.block(ctx, "boot"); err != nil {
		return vm.Process{}, err
	}
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	f.h.booted[v.ID] = time.Now()
	for _, p := range []string{v.ConsoleLog(), v.VMMLog()} {
		data := []byte("fake " + p + "\n")
		if p == v.ConsoleLog() && f.h.console != nil {
			data = f.h.console
		}
		// Appended, as a real VMM does: the logs keep every boot.
		if lf, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err == nil {
			_, _ = lf.Write(data)
			lf.Close()
		}
	}
	f.h.nextPID++
	f.h.procs[f.h.nextPID] = true
	f.h.sockets[f.h.nextPID] = v.Socket
	return vm.Process{PID: f.h.nextPID, StartTime: 1}, nil
}

// Restore implements daemon.VMM: a start from the suspend files, which
// must exist.
func (f *VMM) Restore(ctx context.Context, v *vm.VM, img *image.Image, n daemon.NetInfo) (vm.Process, error) {
	if err := f.h.record("restore", v.Name, img.Name, n.IP.String()); err != nil {
		return vm.Process{}, err
	}
	for _, p := range []string{v.SuspendState(), v.SuspendMemory()} {
		if _, err := os.Stat(p); err != nil {
			return vm.Process{}, fmt.Errorf("restoring: %w", err)
		}
	}
	return f.h.startVMM(v.Socket), nil
}

// RestoreAs implements daemon.VMM: a clone's VMM from another VM's
// snapshot files.
func (f *VMM) RestoreAs(ctx context.Context, v *vm.VM, img *image.Image, n daemon.NetInfo, state, mem string) (vm.Process, error) {
	if err := f.h.record("restore-as", v.Name, img.Name, n.IP.String()); err != nil {
		return vm.Process{}, err
	}
	for _, p := range []string{state, mem} {
		if _, err := os.Stat(p); err != nil {
			return vm.Process{}, fmt.Errorf("restoring: %w", err)
		}
	}
	return f.h.startVMM(v.Socket), nil
}

// SnapshotTo implements daemon.VMM: it writes the two files.
func (f *VMM) SnapshotTo(ctx context.Context, v *vm.VM, state, mem string) error {
	if err := f.h.record("snapshot-to", v.Name); err != nil {
		return err
	}
	if err := f.h.block(ctx, "snapshot"); err != nil {
		return err
	}
	for _, p := range []string{state, mem} {
		if err := os.WriteFile(p, []byte("fake "+p), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// startVMM records a new live fake VMM serving socket.
func (h *Host) startVMM(socket string) vm.Process {
	return vm.Process{PID: h.StartOrphanVMM(socket), StartTime: 1}
}

// Pause implements daemon.VMM.
func (f *VMM) Pause(ctx context.Context, v *vm.VM) error { return f.h.record("pause", v.Name) }

// Resume implements daemon.VMM.
func (f *VMM) Resume(ctx context.Context, v *vm.VM) error { return f.h.record("resume", v.Name) }

// Snapshot implements daemon.VMM: it writes the two suspend files.
func (f *VMM) Snapshot(ctx context.Context, v *vm.VM) error {
	if err := f.h.record("snapshot", v.Name); err != nil {
		return err
	}
	if err := f.h.block(ctx, "snapshot"); err != nil {
		return err
	}
	for _, p := range []string{v.SuspendState(), v.SuspendMemory()} {
		if err := os.WriteFile(p, []byte("fake "+p), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// Shutdown implements daemon.VMM.
func (f *VMM) Shutdown(ctx context.Context, v *vm.VM, timeout time.Duration) error {
	// FailNext("shutdown", an error wrapping daemon.ErrForcedStop) plays
	// a guest that ignores the power button: the VMM ends all the same.
	err := f.h.record("shutdown", v.Name)
	if err != nil && !errors.Is(err, daemon.ErrForcedStop) {
		return err
	}
	f.h.KillVMM(v.Process.PID)
	return err
}

// Kill implements daemon.VMM.
func (f *VMM) Kill(ctx context.Context, v *vm.VM) error {
	_ = f.h.record("kill", v.Name)
	f.h.KillVMM(v.Process.PID)
	return nil
}

// Serving implements daemon.VMM.
func (f *VMM) Serving() map[string]vm.Process {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	out := map[string]vm.Process{}
	for pid, alive := range f.h.procs {
		if alive {
			out[f.h.sockets[pid]] = vm.Process{PID: pid, StartTime: 1}
		}
	}
	return out
}

// StartOrphanVMM starts a fake VMM on socket that no VM records, as a
// daemon killed in the middle of a start leaves behind.
func (h *Host) StartOrphanVMM(socket string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nextPID++
	h.procs[h.nextPID] = true
	h.sockets[h.nextPID] = socket
	return h.nextPID
}

// UpdateWorkDrive implements daemon.VMM.
func (f *VMM) UpdateWorkDrive(ctx context.Context, v *vm.VM) error {
	return f.h.record("updatedrive", v.Name)
}

// Alive implements daemon.VMM.
func (f *VMM) Alive(p vm.Process) bool {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	return f.h.procs[p.PID]
}

// Network is a fake network layer with real address allocation.
type Network struct {
	h      *Host
	subnet netip.Prefix
}

// Ensure implements daemon.Network.
func (f *Network) Ensure(ctx context.Context) error {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	f.h.bridge = true
	return nil
}

// Allocation implements daemon.Network.
func (f *Network) Allocation() string {
	return "bridge banger0, subnet " + f.subnet.String() + ", zone vm."
}

// Allocate implements daemon.Network.
func (f *Network) Allocate(taken []netip.Addr) (netip.Addr, error) {
	used := map[netip.Addr]bool{}
	for _, t := range taken {
		used[t] = true
	}
	a := f.subnet.Addr().Next().Next()
	for ; f.subnet.Contains(a); a = a.Next() {
		if !used[a] && f.subnet.Contains(a.Next()) {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("subnet %s is full", f.subnet)
}

// Info implements daemon.Network.
func (f *Network) Info(ip netip.Addr) daemon.NetInfo {
	gw := f.subnet.Addr().Next()
	return daemon.NetInfo{IP: ip, Gateway: gw, PrefixLen: f.subnet.Bits(), Nameserver: gw}
}

// TAPName implements daemon.Network.
func (f *Network) TAPName(id string) string { return "bg-" + id }

// MAC implements daemon.Network.
func (f *Network) MAC(id string) string {
	return "02:fc:" + id[0:2] + ":" + id[2:4] + ":" + id[4:6] + ":" + id[6:8]
}

// CreateTAP implements daemon.Network.
func (f *Network) CreateTAP(ctx context.Context, v *vm.VM) error {
	if err := f.h.record("tap", v.TAP); err != nil {
		return err
	}
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	f.h.taps[v.TAP] = v.MAC
	return nil
}

// DeleteTAP implements daemon.Network.
func (f *Network) DeleteTAP(ctx context.Context, name string) error {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	delete(f.h.taps, name)
	return nil
}

// TAPs implements daemon.Network.
func (f *Network) TAPs(ctx context.Context) ([]string, error) {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	var out []string
	for t := range f.h.taps {
		out = append(out, t)
	}
	return out, nil
}

// Disks is a fake disk layer that writes small real files, so that leaks
// are visible on the file system.
type Disks struct{ h *Host }

// CloneRoot implements daemon.Disks.
func (f *Disks) CloneRoot(ctx context.Context, img *image.Image, v *vm.VM) (string, error) {
	if err := f.h.record("clone", v.Name, img.Name); err != nil {
		return "", err
	}
	if err := f.h.block(ctx, "clone"); err != nil {
		return "", err
	}
	if err := os.WriteFile(v.RootDisk(), []byte("root"), 0o600); err != nil {
		return "", err
	}
	f.h.mu.Lock()
	f.h.disks[v.RootDisk()] = img.SizeBytes
	f.h.mu.Unlock()
	return "fake", nil
}

// Layout implements daemon.Disks: the fake host makes layered VMs.
func (f *Disks) Layout() vm.Layout { return vm.Layered }

// MakeLayer implements daemon.Disks: a small file standing for the layer.
func (f *Disks) MakeLayer(ctx context.Context, v *vm.VM, size int64) error {
	if err := f.h.record("layer", v.Name, vm.FormatSize(size)); err != nil {
		return err
	}
	if err := f.h.block(ctx, "layer"); err != nil {
		return err
	}
	if err := os.WriteFile(v.LayerDisk(), []byte("layer over "+v.Base), 0o600); err != nil {
		return err
	}
	f.h.mu.Lock()
	f.h.disks[v.LayerDisk()] = size
	f.h.mu.Unlock()
	return nil
}

// WriteIdentity implements daemon.Disks.
func (f *Disks) WriteIdentity(ctx context.Context, v *vm.VM, n daemon.NetInfo) error {
	return f.h.record("identity", v.Name, n.IP.String())
}

// CopyDisks implements daemon.Disks: dst gets src's work disk size.
func (f *Disks) CopyDisks(ctx context.Context, src, dst *vm.VM) error {
	if err := f.h.record("copydisks", src.Name, dst.Name); err != nil {
		return err
	}
	if err := os.WriteFile(dst.WorkDisk(), []byte("work"), 0o600); err != nil {
		return err
	}
	f.h.mu.Lock()
	f.h.disks[dst.WorkDisk()] = f.h.disks[src.WorkDisk()]
	f.h.mu.Unlock()
	return nil
}

// NewHostKey implements daemon.Disks.
func (f *Disks) NewHostKey(ctx context.Context, v *vm.VM) (guest.HostKey, error) {
	if err := f.h.record("hostkey", v.Name); err != nil {
		return guest.HostKey{}, err
	}
	return guest.NewHostKey("fake")
}

// CreateWork implements daemon.Disks.
func (f *Disks) CreateWork(ctx context.Context, v *vm.VM) error {
	if err := f.h.record("workdisk", v.Name); err != nil {
		return err
	}
	if err := os.WriteFile(v.WorkDisk(), []byte("work"), 0o600); err != nil {
		return err
	}
	f.h.mu.Lock()
	f.h.disks[v.WorkDisk()] = v.DiskBytes
	f.h.mu.Unlock()
	return nil
}

// Grow implements daemon.Disks.
func (f *Disks) Grow(ctx context.Context, v *vm.VM, size int64) error {
	if err := f.h.record("grow", v.Name, vm.FormatSize(size)); err != nil {
		return err
	}
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	f.h.disks[v.WorkDisk()] = size
	return nil
}

// ExtendWork implements daemon.Disks.
func (f *Disks) ExtendWork(ctx context.Context, v *vm.VM, size int64) error {
	if err := f.h.record("extend", v.Name, vm.FormatSize(size)); err != nil {
		return err
	}
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	f.h.disks[v.WorkDisk()] = size
	return nil
}

// GrowRoot implements daemon.Disks.
func (f *Disks) GrowRoot(ctx context.Context, v *vm.VM, size int64) error {
	if err := f.h.record("growroot", v.Name, vm.FormatSize(size)); err != nil {
		return err
	}
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	if cur := f.h.disks[v.WritableRoot()]; size < cur {
		return fmt.Errorf("growing %s to %s: %w", v.WritableRoot(), vm.FormatSize(size), disk.ErrShrink)
	}
	f.h.disks[v.WritableRoot()] = size
	return nil
}

// FakeDpkgStatus is the dpkg status CommitRoot reports for every disk.
const FakeDpkgStatus = "Package: base-files\nStatus: install ok installed\nVersion: 12.4\nArchitecture: amd64\n\nPackage: hello\nStatus: install ok installed\nVersion: 2.10-3\nArchitecture: amd64\n"

// CommitRoot implements daemon.Disks: it moves or copies the fake root
// disk to dst.
func (f *Disks) CommitRoot(ctx context.Context, v *vm.VM, dst string, move bool) ([]byte, error) {
	op := "commitroot-clone"
	if move {
		op = "commitroot-move"
	}
	if v.LayoutOrClone() == vm.Layered {
		op = "commitroot-flatten"
	}
	if err := f.h.record(op, v.Name); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(v.WritableRoot())
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		return nil, err
	}
	if move {
		_ = os.Remove(v.RootDisk())
		f.h.mu.Lock()
		delete(f.h.disks, v.RootDisk())
		f.h.mu.Unlock()
	}
	return []byte(FakeDpkgStatus), nil
}

// Remove implements daemon.Disks.
func (f *Disks) Remove(ctx context.Context, v *vm.VM) error {
	_ = f.h.record("rmdisks", v.Name)
	f.h.mu.Lock()
	delete(f.h.disks, v.RootDisk())
	delete(f.h.disks, v.LayerDisk())
	delete(f.h.disks, v.WorkDisk())
	f.h.mu.Unlock()
	for _, p := range []string{v.RootDisk(), v.LayerDisk(), v.WorkDisk()} {
		_ = os.Remove(p)
	}
	return nil
}

// DNS is a fake record set.
type DNS struct{ h *Host }

// Set implements daemon.Records.
func (f *DNS) Set(name string, ip netip.Addr) {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	f.h.records[name] = ip.String()
}

// Remove implements daemon.Records.
func (f *DNS) Remove(name string) {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	delete(f.h.records, name)
}

// Replace implements daemon.Records.
func (f *DNS) Replace(r map[string]netip.Addr) {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	f.h.records = map[string]string{}
	for k, v := range r {
		f.h.records[k] = v.String()
	}
}

// Zone implements daemon.Records.
func (f *DNS) Zone() string { return "vm." }

// ReservedName is the name the fake DNS says a user's zone takes.
const ReservedName = "alice"

// Usable implements daemon.Records.
func (f *DNS) Usable(name string) error {
	if name == ReservedName {
		return fmt.Errorf("vm name %q is taken by a user's zone", name)
	}
	return nil
}

// Count implements daemon.Records.
func (f *DNS) Count() int {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	return len(f.h.records)
}

// Listeners implements daemon.Records.
func (f *DNS) Listeners() []api.Listener {
	return []api.Listener{{Name: "dns", Network: "udp+tcp", Address: "127.0.0.1:0", Detail: "fake"}}
}

// Guest is a fake guest reachability check.
type Guest struct{ h *Host }

// WaitSSH implements daemon.Guest: the guest's port was found closed
// once, then opened and answered. With a console set (SetConsole), the
// port opens when the console's sshd mark says, counted from the VMM's
// start, so the daemon's clock and the console agree.
func (f *Guest) WaitSSH(ctx context.Context, v *vm.VM) (guest.Readiness, error) {
	if err := f.h.record("ssh", v.Name); err != nil {
		return guest.Readiness{}, err
	}
	if err := f.h.block(ctx, "ssh"); err != nil {
		return guest.Readiness{}, err
	}
	f.h.mu.Lock()
	booted, console := f.h.booted[v.ID], f.h.console
	f.h.mu.Unlock()
	open := time.Now()
	if sshd, ok := vm.ParseConsole(console)[vm.MarkSSHD]; ok && !booted.IsZero() {
		open = booted.Add(fakeVMMDelay + sshd)
	}
	return guest.Readiness{Attempts: 2, Refused: true, Connected: open, Answered: open.Add(fakeHandshakeDelay)}, nil
}

// Connect implements daemon.Guest with a connection that records the
// commands and uploads it is given ("guest-run LINE", "upload SRC DEST").
// FailNext("guest-run") fails the next command, FailNext("guest-run WORD")
// the next that starts with WORD; FailNext("connect") the connection
// itself.
func (f *Guest) Connect(ctx context.Context, v *vm.VM) (daemon.GuestConn, error) {
	if err := f.h.record("connect", v.Name); err != nil {
		return nil, err
	}
	return &GuestConn{h: f.h}, nil
}

// GuestConn is a fake SSH connection to a guest.
type GuestConn struct{ h *Host }

// Run implements daemon.GuestConn. A command blocks while the host is
// paused (see Pause), so tests can interrupt a build in the middle.
func (c *GuestConn) Run(ctx context.Context, cmd guest.Command) error {
	// FailNext("guest-run WORD") fails only a command line that starts
	// with WORD.
	if err := c.h.record("guest-run", strings.SplitN(cmd.Line, " ", 2)...); err != nil {
		return err
	}
	c.h.mu.Lock()
	pause := c.h.pause
	c.h.mu.Unlock()
	if pause != nil {
		select {
		case pause <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	}
	if cmd.Stdout != nil {
		fmt.Fprintf(cmd.Stdout, "ran: %.40s\n", cmd.Line)
	}
	return nil
}

// Upload implements daemon.GuestConn.
func (c *GuestConn) Upload(ctx context.Context, src, dst string) error {
	return c.h.record("upload", src, dst)
}

// Close implements daemon.GuestConn.
func (c *GuestConn) Close() error { return c.h.record("close") }

// PauseGuestCommands makes every later guest command block until its
// context ends; the returned channel receives once a command is blocked.
func (h *Host) PauseGuestCommands() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pause = make(chan struct{}, 1)
	return h.pause
}

type stats struct{}

func (stats) Sample(pid int) (time.Duration, int64, error) {
	return time.Duration(pid%7) * time.Millisecond, 64 << 20, nil
}

// Bootstrapper is a fake image bootstrap that writes small kernel, initrd
// and root file system files. FailNext("bootstrap") fails it.
type Bootstrapper struct{ h *Host }

// Bootstrap implements daemon.Bootstrapper.
func (f *Bootstrapper) Bootstrap(ctx context.Context, req api.BootstrapImageRequest, outDir string, log io.Writer, progress func(api.Progress)) (image.Image, error) {
	fmt.Fprintf(log, "fake bootstrap of %s\n", req.Name)
	if err := f.h.record("bootstrap", req.Name, "kernel="+req.Kernel); err != nil {
		return image.Image{}, err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return image.Image{}, err
	}
	img := image.Image{Kernel: outDir + "/vmlinuz", Vmlinux: outDir + "/vmlinux", Initrd: outDir + "/initrd.img", Rootfs: outDir + "/rootfs.ext4",
		KernelVersion: "6.1.0-fake", SizeBytes: 1 << 30, CreatedAt: time.Now().UTC()}
	for _, p := range []string{img.Kernel, img.Vmlinux, img.Initrd, img.Rootfs} {
		if err := os.WriteFile(p, []byte("fake "+p), 0o644); err != nil {
			return image.Image{}, err
		}
	}
	progress(api.Progress{Step: "fake", Message: "bootstrapped " + req.Name})
	return img, nil
}

// Resolver is a fake host resolver integration. Like systemd-resolved, it
// defers a setup until the bridge exists. Its calls are recorded as
// "resolver on" and "resolver off".
type Resolver struct{ h *Host }

// Apply implements daemon.HostResolver.
func (f *Resolver) Apply(ctx context.Context, on bool) (api.DNSSetup, error) {
	f.h.mu.Lock()
	bridge := f.h.bridge
	f.h.mu.Unlock()
	out := api.DNSSetup{Method: "resolved", Link: "banger0"}
	if on && !bridge {
		out.Deferred = true
		return out, nil
	}
	verb := "off"
	if on {
		verb = "on"
	}
	if err := f.h.record("resolver", verb); err != nil {
		return out, err
	}
	out.Ran = [][]string{{"resolvectl", "dns", "banger0"}}
	return out, nil
}

// Exec implements daemon.Guest with a fake command: "cat" copies stdin to
// stdout, "fail N" writes to stderr and exits N, anything else prints its
// argv, one argument a line. The call is recorded as "exec ARGV…".
func (f *Guest) Exec(ctx context.Context, v *vm.VM, req guest.ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (api.ExecProcess, error) {
	if err := f.h.record("exec", req.Argv...); err != nil {
		return nil, err
	}
	p := &fakeProcess{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		switch {
		case len(req.Argv) > 0 && req.Argv[0] == "cat":
			_, _ = io.Copy(stdout, stdin)
		case len(req.Argv) == 2 && req.Argv[0] == "fail":
			fmt.Fprintf(stderr, "failing with %s\n", req.Argv[1])
			fmt.Sscan(req.Argv[1], &p.code)
		default:
			for _, a := range req.Argv {
				fmt.Fprintln(stdout, a)
			}
		}
	}()
	return p, nil
}

// Forget implements daemon.Guest.
func (f *Guest) Forget(v *vm.VM) { _ = f.h.record("forget", v.Name) }

func (f *Guest) Park(v *vm.VM) { _ = f.h.record("park", v.Name) }

// ArmClock records the call; SetClock then reports the clock set once.
func (f *Guest) ArmClock(ctx context.Context, v *vm.VM) error {
	if err := f.h.record("armclock", v.Name); err != nil {
		return err
	}
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	if f.h.armed == nil {
		f.h.armed = map[string]bool{}
	}
	f.h.armed[v.ID] = true
	return nil
}

func (f *Guest) DisarmClock(v *vm.VM) {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	delete(f.h.armed, v.ID)
}

func (f *Guest) SetClock(ctx context.Context, v *vm.VM, now func() time.Time) bool {
	f.h.mu.Lock()
	armed := f.h.armed[v.ID]
	delete(f.h.armed, v.ID)
	f.h.mu.Unlock()
	if !armed {
		return false
	}
	return f.h.record("setclock", v.Name) == nil
}

// GiveIdentity implements daemon.Guest: it records "identity TEMPLATE
// HOSTNAME" and says what a real agent says.
func (f *Guest) GiveIdentity(ctx context.Context, t *vm.VM, token string, id guest.Identity, now func() time.Time) (string, error) {
	if token == "" {
		return "", fmt.Errorf("fake identity agent: no token")
	}
	if err := f.h.record("identity", t.Name, id.Hostname); err != nil {
		return "", err
	}
	return fmt.Sprintf("banger-reidentify: %s takes %s (%s) on eth0", id.Hostname, id.Address, id.MAC), nil
}

type fakeProcess struct {
	done chan struct{}
	code int
}

func (p *fakeProcess) Wait() (int, error) {
	<-p.done
	return p.code, nil
}

func (p *fakeProcess) Resize(rows, cols int) error { return nil }

func (p *fakeProcess) Signal(name string) error { return nil }
