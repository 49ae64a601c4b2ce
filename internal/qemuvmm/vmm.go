package qemuvmm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"banger/internal/system"
)

// Exit codes of banger-vmm-qemu. A stop by signal exits with 128+signal.
const (
	// ExitGuestStopped: the guest powered off or rebooted (-no-reboot),
	// which is the normal end of a VM, like Firecracker's exit 0.
	ExitGuestStopped = 0
	// ExitError: QEMU failed or could not be run, or the API socket could
	// not be served. The log says why.
	ExitError = 1
	// ExitUsage: bad command line.
	ExitUsage = 2
)

// Version is reported by GET / and GET /version. It names the Firecracker
// API version this server follows.
const Version = "1.0.0"

// Proc is a started QEMU process (satisfied by *system.Process).
type Proc interface {
	PID() int
	Done() <-chan struct{}
	Wait() (system.ExitStatus, error)
	Signal(os.Signal) error
}

// Config is the VMM's configuration from its command line.
type Config struct {
	// APISock is the path of the API unix socket.
	APISock string
	// ID is the instance id reported by GET /.
	ID string
	// QEMU is the emulator binary.
	QEMU string
	// Accel is "auto", "kvm" or "tcg".
	Accel string
	// Console is where the guest serial console goes (standard output)
	// and ConsoleIn what feeds it (standard input).
	Console   io.Writer
	ConsoleIn io.Reader
	// QEMUStderr receives QEMU's own diagnostics besides the log.
	QEMUStderr io.Writer
	// StartWait bounds how long InstanceStart waits for QEMU to come up
	// before answering; QEMU errors found in that window fail the call.
	StartWait time.Duration
}

// Deps are the VMM's side effects, replaced by fakes in tests.
type Deps struct {
	// Logger is where the VMM logs until PUT /logger names a file.
	Logger *slog.Logger
	// Start starts QEMU.
	Start func(system.ProcessSpec) (Proc, error)
	// DialQMP connects to QEMU's QMP socket.
	DialQMP func(ctx context.Context, path string) (Controller, error)
	// HostFacts gathers what ProbeAccel decides on.
	HostFacts func(ctx context.Context) HostFacts
	// Now is the clock.
	Now func() time.Time
}

// RealDeps returns the production dependencies.
func RealDeps(logger *slog.Logger) Deps {
	return Deps{
		Logger: logger,
		Start: func(spec system.ProcessSpec) (Proc, error) {
			p, err := system.StartProcess(spec)
			if err != nil {
				return nil, err
			}
			return p, nil
		},
		DialQMP: DialQMP,
		HostFacts: func(ctx context.Context) HostFacts {
			return ReadHostFacts(ctx, func(ctx context.Context) ([]byte, error) {
				return system.Plain().Output(ctx, "dmesg")
			})
		},
		Now: time.Now,
	}
}

// VMM is one banger-vmm-qemu instance: the API state and, after
// InstanceStart, the QEMU process.
type VMM struct {
	cfg  Config
	deps Deps

	logHandler atomic.Pointer[slog.Handler]
	requests   atomic.Uint64
	started    time.Time

	accelOnce sync.Once
	accelDone chan struct{}
	accel     Accel
	accelErr  error

	mu       sync.Mutex
	state    string
	machine  MachineConfig
	boot     *BootSource
	drives   []Drive // insertion order
	nics     []NetworkInterface
	logger   *Logger
	logFile  *os.File
	metrics  *Metrics
	metFile  *os.File
	vsock    *Vsock
	mmdsCfg  *MmdsConfig
	mmds     json.RawMessage
	nodes    map[string]string // drive_id → QEMU node
	swaps    int               // backing-file swaps so far, naming their nodes
	proc     Proc
	qmp      Controller
	qmpReady chan struct{}
	stderr   *tailBuffer
	stopping bool
	// ram is the memfd holding guest RAM, which QEMU maps shared; launch
	// is the configuration QEMU runs with; configured is set by the first
	// boot-specific PUT (after which a snapshot load is refused).
	ram        *os.File
	launch     LaunchConfig
	configured bool

	exited chan struct{} // closed when QEMU has exited
}

// New returns a VMM in the "Not started" state.
func New(cfg Config, deps Deps) *VMM {
	if cfg.StartWait == 0 {
		cfg.StartWait = 300 * time.Millisecond
	}
	if cfg.ID == "" {
		cfg.ID = "anonymous-instance"
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	v := &VMM{
		cfg:       cfg,
		deps:      deps,
		started:   deps.Now(),
		accelDone: make(chan struct{}),
		state:     StateNotStarted,
		machine:   MachineConfig{VcpuCount: ptr(int64(1)), MemSizeMib: ptr(int64(128)), Smt: ptr(false)},
		nodes:     map[string]string{},
		qmpReady:  make(chan struct{}),
		exited:    make(chan struct{}),
		stderr:    &tailBuffer{max: 4096},
	}
	h := deps.Logger.Handler()
	v.logHandler.Store(&h)
	return v
}

func ptr[T any](v T) *T { return &v }

func (v *VMM) log() *slog.Logger {
	return slog.New(*v.logHandler.Load()).With("vm", v.cfg.ID)
}

// probeAccel decides the acceleration once, in the background from Serve,
// so that InstanceStart rarely waits for it.
func (v *VMM) probeAccel(ctx context.Context) {
	v.accelOnce.Do(func() {
		go func() {
			defer close(v.accelDone)
			facts := HostFacts{KVMErr: os.ErrNotExist}
			if v.deps.HostFacts != nil {
				facts = v.deps.HostFacts(ctx)
			}
			v.accel, v.accelErr = ChooseAccel(v.cfg.Accel, facts)
			if v.accelErr == nil {
				v.log().Info("acceleration chosen", "accel", v.accel.Kind, "reason", v.accel.Reason, "tsc_khz", v.accel.TSCKHz)
			}
		}()
	})
}

// Serve listens on the API socket and serves until ctx ends or QEMU exits;
// then it stops QEMU (if running) and returns the process exit code. sig
// delivers SIGTERM/SIGINT from the caller; each stops the VM and the exit
// code is 128+signal.
func (v *VMM) Serve(ctx context.Context, sig <-chan os.Signal) int {
	ln, err := listenUnix(v.cfg.APISock)
	if err != nil {
		v.log().Error("serving the API", "err", err)
		return ExitError
	}
	defer os.Remove(v.cfg.APISock)
	v.probeAccel(ctx)
	srv := &http.Server{Handler: v.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	v.log().Info("API server listening", "path", v.cfg.APISock)
	code := v.waitEnd(ctx, sig)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = srv.Shutdown(shutdownCtx)
	cancel()
	v.closeFiles()
	return code
}

func (v *VMM) waitEnd(ctx context.Context, sig <-chan os.Signal) int {
	select {
	case s := <-sig:
		v.log().Info("stopping on signal", "signal", s.String())
		v.stopQEMU()
		if ss, ok := s.(syscall.Signal); ok {
			return 128 + int(ss)
		}
		return 128 + int(syscall.SIGTERM)
	case <-ctx.Done():
		v.log().Info("stopping", "reason", ctx.Err())
		v.stopQEMU()
		return 128 + int(syscall.SIGTERM)
	case <-v.exited:
		return v.exitCode()
	}
}

// exitCode maps QEMU's end to ours: a clean QEMU exit we did not cause is
// the guest powering off or rebooting.
func (v *VMM) exitCode() int {
	v.mu.Lock()
	p := v.proc
	v.mu.Unlock()
	st, err := p.Wait()
	if err != nil {
		v.log().Error("waiting for qemu", "err", err)
		return ExitError
	}
	if st.Success() {
		v.log().Info("guest stopped; qemu exited")
		return ExitGuestStopped
	}
	v.log().Error("qemu failed", "status", st.String(), "stderr", v.stderr.String())
	return ExitError
}

// stopQEMU ends QEMU: SIGTERM, then SIGKILL after 5 s.
func (v *VMM) stopQEMU() {
	v.mu.Lock()
	p := v.proc
	v.stopping = true
	v.mu.Unlock()
	if p == nil {
		return
	}
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		v.log().Warn("qemu ignored SIGTERM; killing it", "pid", p.PID())
		_ = p.Signal(syscall.SIGKILL)
		<-p.Done()
	}
	_, _ = p.Wait()
}

func (v *VMM) closeFiles() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.qmp != nil {
		v.qmp.Close()
	}
	if v.ram != nil {
		v.ram.Close()
		v.ram = nil
	}
	if v.metFile != nil {
		v.writeMetricsLocked()
		v.metFile.Close()
		v.metFile = nil
	}
	if v.logFile != nil {
		v.logFile.Close()
		v.logFile = nil
	}
}

// listenUnix listens on path, replacing a stale socket file but refusing
// one that another process still serves.
func listenUnix(path string) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("listening on the API socket: no path given (use --api-sock)")
	}
	if _, err := os.Lstat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, fmt.Errorf("listening on %s: another process serves this socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing stale socket %s: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	return ln, nil
}

// tailBuffer keeps the last bytes written to it (QEMU's stderr) for error
// messages, and passes everything on to next.
type tailBuffer struct {
	mu   sync.Mutex
	max  int
	buf  []byte
	next io.Writer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	next := t.next
	t.mu.Unlock()
	if next != nil {
		_, _ = next.Write(p)
	}
	return len(p), nil
}

func (t *tailBuffer) setNext(w io.Writer) {
	t.mu.Lock()
	t.next = w
	t.mu.Unlock()
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
