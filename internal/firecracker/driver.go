package firecracker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	sdk "github.com/firecracker-microvm/firecracker-go-sdk"

	"banger/internal/system"
)

// Default timeouts of a Driver.
const (
	DefaultSocketTimeout = 5 * time.Second
	DefaultTermTimeout   = 5 * time.Second
	DefaultKillTimeout   = 2 * time.Second
	// socketPoll is the step of the API socket wait.
	socketPoll = 2 * time.Millisecond
)

// ErrNotRunning says that the recorded VMM process is gone (or its pid now
// belongs to another process).
var ErrNotRunning = errors.New("vmm process is not running")

// Deps are a Driver's dependencies and settings. The zero value works.
type Deps struct {
	// Log receives the driver's lifecycle records and, at debug level, the
	// SDK's own log. Nil discards.
	Log *slog.Logger
	// Plain runs unprivileged probes (`<vmm> --version`). Nil means
	// system.Plain().
	Plain system.Runner
	// SocketTimeout bounds the wait for a new VMM's API socket.
	SocketTimeout time.Duration
	// TermTimeout is how long Shutdown waits after SIGTERM before SIGKILL.
	TermTimeout time.Duration
	// KillTimeout is how long Shutdown and Kill wait after SIGKILL.
	KillTimeout time.Duration
}

// Process identifies a running VMM. The daemon stores it with the VM and
// hands it back after a restart to Adopt, Shutdown, Kill, Alive and Wait.
type Process struct {
	// ID is the VM id, used in log records.
	ID string
	// PID is the VMM's pid.
	PID int
	// StartTime is the VMM's start time from /proc/PID/stat, in clock ticks
	// since boot; with PID it tells the process apart from a later one that
	// reuses the pid.
	StartTime uint64
	// Socket is the VMM's API socket.
	Socket string
}

// Driver starts, adopts, stops and watches VMM processes. It is safe for
// concurrent use.
type Driver struct {
	log           *slog.Logger
	plain         system.Runner
	socketTimeout time.Duration
	termTimeout   time.Duration
	killTimeout   time.Duration

	// uid is the daemon's user, which runs its VMMs and owns their API
	// sockets.
	uid int
	// signal sends a signal after checking pid and start time.
	signal func(pid int, start uint64, sig syscall.Signal) error

	mu       sync.Mutex
	children map[int]*child
}

// child is a VMM that this driver started and reaps.
type child struct {
	start uint64
	done  chan struct{}
	exit  Exit
}

// New returns a Driver.
func New(deps Deps) *Driver {
	d := &Driver{
		log:           deps.Log,
		plain:         deps.Plain,
		socketTimeout: deps.SocketTimeout,
		termTimeout:   deps.TermTimeout,
		killTimeout:   deps.KillTimeout,
		uid:           os.Geteuid(),
		signal:        signalProcess,
		children:      map[int]*child{},
	}
	if d.log == nil {
		d.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if d.plain == nil {
		d.plain = system.Plain()
	}
	if d.socketTimeout <= 0 {
		d.socketTimeout = DefaultSocketTimeout
	}
	if d.termTimeout <= 0 {
		d.termTimeout = DefaultTermTimeout
	}
	if d.killTimeout <= 0 {
		d.killTimeout = DefaultKillTimeout
	}
	return d
}

// Start launches the VMM for s in its own session, waits for its API
// socket, configures the machine through the API and boots it
// (InstanceStart). The process does not depend on ctx or on the daemon: it
// keeps running until stopped. On error nothing is left running.
func (d *Driver) Start(ctx context.Context, s Spec) (Process, error) {
	cfg, err := BuildConfig(s)
	if err != nil {
		return Process{}, fmt.Errorf("starting vmm for vm %s: %w", s.ID, err)
	}
	p, err := d.launch(ctx, s, cfg)
	if err != nil {
		return Process{}, fmt.Errorf("starting vmm for vm %s: %w", s.ID, err)
	}
	if err := d.configure(ctx, cfg); err != nil {
		kerr := d.Kill(context.WithoutCancel(ctx), p)
		return Process{}, errors.Join(
			fmt.Errorf("configuring vmm for vm %s: %w (see %s and %s)", s.ID, err, s.VMMLogPath(), s.ConsoleLogPath()),
			kerr)
	}
	d.log.Info("vm booted", "vm", s.ID, "pid", p.PID, "socket", p.Socket)
	return p, nil
}

// launch starts the VMM process and waits until its API socket accepts
// connections.
func (d *Driver) launch(ctx context.Context, s Spec, cfg sdk.Config) (Process, error) {
	bin, err := resolveBinary(s.binary())
	if err != nil {
		return Process{}, err
	}
	if err := checkFiles(s); err != nil {
		return Process{}, err
	}
	if err := os.MkdirAll(s.StateDir, 0o700); err != nil {
		return Process{}, fmt.Errorf("creating state dir: %w", err)
	}
	// A socket left by a dead VMM would make the new one fail to bind.
	if err := os.Remove(s.Socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return Process{}, fmt.Errorf("removing stale api socket: %w", err)
	}
	console, err := os.OpenFile(s.ConsoleLogPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return Process{}, fmt.Errorf("opening console log: %w", err)
	}
	defer console.Close()

	argv := VMMArgs(bin, cfg)
	// Its own session: no signal aimed at the daemon's process group or
	// terminal reaches the VMM, so it outlives a daemon restart or kill.
	// The VMM runs as the daemon's user: /dev/kvm through the kvm group,
	// the TAP because it is the user's.
	proc, err := system.StartProcess(system.ProcessSpec{
		Argv:       argv,
		Dir:        s.StateDir,
		Stdout:     console,
		Stderr:     console,
		NewSession: true,
	})
	if err != nil {
		return Process{}, fmt.Errorf("launching vmm: %w", err)
	}
	pid := proc.PID()
	c := &child{done: make(chan struct{})}
	go func() {
		st, err := proc.Wait()
		if err == nil {
			c.exit = Exit{Known: true, Code: st.Code, Signal: st.Signal}
		}
		close(c.done)
	}()
	log := d.log.With("vm", s.ID)
	log.Debug("vmm launched", "argv", argv, "pid", pid)

	fail := func(err error) (Process, error) {
		// Whatever was started must not outlive the failed start: the VMM
		// leads its own session and process group, helpers included.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		select {
		case <-c.done:
		case <-time.After(d.killTimeout):
			log.Warn("vmm still running after a failed start", "pid", pid)
		}
		return Process{}, fmt.Errorf("%w (see %s)", err, s.ConsoleLogPath())
	}

	st, err := system.ReadProcStat(pid)
	if err != nil {
		return fail(fmt.Errorf("reading start time of vmm pid %d: %w", pid, err))
	}
	p := Process{ID: s.ID, PID: pid, StartTime: st.StartTime, Socket: s.Socket}
	c.start = st.StartTime
	d.addChild(pid, c)
	if err := d.waitForSocket(ctx, s.Socket, time.Now().Add(d.socketTimeout), c); err != nil {
		return fail(err)
	}
	log.Info("vmm started", "pid", pid, "socket", s.Socket, "binary", bin)
	return p, nil
}

// resolveBinary returns the absolute path of the VMM program, so that its
// command line (what Adopt and ServingSockets read) names it exactly.
func resolveBinary(bin string) (string, error) {
	if !strings.Contains(bin, "/") {
		p, err := system.LookPath(bin)
		if err != nil {
			return "", fmt.Errorf("finding vmm binary: %w (install Firecracker, or set the vmm binary to banger-vmm-qemu)", err)
		}
		bin = p
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		return "", fmt.Errorf("resolving vmm binary %s: %w", bin, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("finding vmm binary: %w", err)
	}
	if !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("vmm binary %s is not an executable file", abs)
	}
	return abs, nil
}

// checkFiles makes sure the files the VMM will open exist, so a missing
// one is reported by name rather than as a VMM fault.
func checkFiles(s Spec) error {
	var errs []error
	for _, f := range []struct{ what, path string }{
		{"kernel image", s.Kernel}, {"initrd", s.Initrd}, {"root drive", s.RootDrive}, {"work drive", s.WorkDrive},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, fmt.Errorf("checking %s: %w", f.what, err))
		}
	}
	return errors.Join(errs...)
}

// waitForSocket polls until the API socket accepts connections. c is the
// VMM's reaper: its exit ends the wait.
func (d *Driver) waitForSocket(ctx context.Context, socket string, deadline time.Time, c *child) error {
	t := time.NewTicker(socketPoll)
	defer t.Stop()
	for {
		ok, err := d.ownSocket(socket)
		if err != nil {
			return err
		}
		if ok && dialable(socket) {
			return nil
		}
		select {
		case <-c.done:
			return fmt.Errorf("vmm exited before its api socket %s was ready: %s", socket, c.exit)
		case <-ctx.Done():
			return fmt.Errorf("waiting for api socket %s: %w", socket, ctx.Err())
		case now := <-t.C:
			if now.After(deadline) {
				return fmt.Errorf("waiting for api socket %s: not ready after %s", socket, d.socketTimeout)
			}
		}
	}
}

// ownSocket reports whether the API socket exists (false while it does
// not yet) and fails when another user owns it: VMMs run as the daemon's
// user, so a socket of another user's (root's, made by a VMM an older
// banger started through sudo) is not one this daemon can drive.
func (d *Driver) ownSocket(socket string) (bool, error) {
	fi, err := os.Stat(socket)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("checking api socket: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != d.uid {
		return false, fmt.Errorf("api socket %s is owned by uid %d, not by uid %d that runs bangerd: "+
			"its vmm was started by another user (root, or an older banger through sudo); stop it as that user", socket, st.Uid, d.uid)
	}
	return true, nil
}

func (d *Driver) addChild(pid int, c *child) {
	d.mu.Lock()
	defer d.mu.Unlock()
	// Forget children whose exit has been observed long enough ago that no
	// caller still waits for them.
	for p, old := range d.children {
		select {
		case <-old.done:
			if !system.ProcessAlive(p, old.start) {
				delete(d.children, p)
			}
		default:
		}
	}
	d.children[pid] = c
}

func (d *Driver) childOf(p Process) *child {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.children[p.PID]
	if c == nil || c.start != p.StartTime {
		return nil
	}
	return c
}

// dialable reports whether something listens on the unix socket.
func dialable(socket string) bool {
	c, err := net.DialTimeout("unix", socket, 100*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
