package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"banger/internal/config"
	"banger/internal/forward"
	"banger/internal/store"
)

// Config is what the daemon is told by its main.
type Config struct {
	*config.Loaded
	Version string
	BuildID string
	// Executable is the daemon's binary, reported in status.
	Executable string
	// Service is the systemd unit running the daemon ("bangerd.service"),
	// empty when something else started it; reported in status.
	Service string
}

// Deps are the daemon's host layers. A nil layer makes the operations that
// need it fail their preflight with a message saying what is missing.
type Deps struct {
	VMM       VMM
	Network   Network
	Disks     Disks
	DNS       Records
	Guest     Guest
	Preflight Preflight
	Resolver  HostResolver
	// Runtime is the runtime bundle in use; nil when there is none.
	Runtime   *Runtime
	Bootstrap Bootstrapper
	Stats     Stats
	Log       *slog.Logger
	Now       func() time.Time
}

// Daemon is one running bangerd.
type Daemon struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	store   *store.Store
	events  *broker
	started time.Time

	stopTimeout time.Duration
	bootStall   time.Duration
	interval    time.Duration

	allocMu sync.Mutex // serializes address allocation with row insertion
	namesMu sync.Mutex // a VM row's state and its DNS record change together
	fwd     forwards   // the running VMs' port forwards
	locks   *locks     // one operation at a time per VM, image name and build

	netReady atomic.Bool // the bridge, NAT and guest resolver were ensured

	// pruneMu keeps `image prune` off the bootstrap cache while an image
	// bootstrap runs (read-held from its cache lookup to its registration).
	pruneMu sync.RWMutex

	statsMu sync.Mutex
	samples map[int]cpuSample

	shutdown chan struct{}
	once     sync.Once
}

// New opens the database and builds a daemon. It does not listen yet.
func New(ctx context.Context, cfg Config, deps Deps) (*Daemon, error) {
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Stats == nil {
		deps.Stats = procStats{}
	}
	st, err := store.Open(ctx, cfg.Paths.Database())
	if err != nil {
		return nil, err
	}
	d := &Daemon{
		cfg:         cfg,
		deps:        deps,
		log:         deps.Log,
		store:       st,
		events:      newBroker(),
		started:     deps.Now(),
		stopTimeout: config.MustDuration(cfg.StopTimeout),
		bootStall:   config.MustDuration(cfg.BootStallTimeout),
		interval:    config.MustDuration(cfg.ReconcileInterval),
		locks:       newLocks(),
		fwd:         forwards{byVM: map[string]*forward.Forwarder{}},
		samples:     map[int]cpuSample{},
		shutdown:    make(chan struct{}),
	}
	return d, nil
}

// Close releases the database.
func (d *Daemon) Close() error { return d.store.Close() }

// Store exposes the database to tests and benchmarks in this module.
func (d *Daemon) Store() *store.Store { return d.store }

// Lock takes the per-user daemon lock so that only one bangerd runs. The
// returned function releases it.
func Lock(paths config.Paths) (func(), error) {
	if err := os.MkdirAll(paths.RuntimeDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating runtime directory %s: %w", paths.RuntimeDir, err)
	}
	if err := os.Chmod(paths.RuntimeDir, 0o700); err != nil {
		return nil, fmt.Errorf("securing runtime directory %s: %w", paths.RuntimeDir, err)
	}
	f, err := os.OpenFile(paths.LockFile(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening daemon lock %s: %w", paths.LockFile(), err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := os.ReadFile(paths.LockFile())
		f.Close()
		return nil, fmt.Errorf("another bangerd (pid %s) is already running for this user: `banger daemon status` shows it, `banger daemon stop` stops it", strings.TrimSpace(string(b)))
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}

// Listen creates the API socket (directory 0700, socket 0600), replacing a
// stale one. Call it with the daemon lock held.
func Listen(socket string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(socket), 0o700); err != nil {
		return nil, fmt.Errorf("creating socket directory: %w", err)
	}
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing stale socket %s: %w", socket, err)
	}
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", socket)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", socket, err)
	}
	if err := os.Chmod(socket, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("securing socket %s: %w", socket, err)
	}
	return l, nil
}

// Serve answers API requests on l and runs the reconcile loop until ctx
// ends or a client asks for shutdown. VMs are left running.
func (d *Daemon) Serve(ctx context.Context, l net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := d.Reconcile(ctx); err != nil {
		d.log.Error("reconciling at start", "err", err)
	}
	d.refreshSSHConfig(ctx)
	if err := d.registerBundleImage(ctx); err != nil {
		d.log.Warn("registering the runtime bundle as an image", "err", err)
	}
	srv := &http.Server{
		Handler:           d.Handler(),
		ConnContext:       peerContext,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	go d.reconcileLoop(ctx)
	d.log.Info("bangerd serving", "socket", l.Addr().String(), "pid", os.Getpid(), "version", d.cfg.Version)
	select {
	case <-ctx.Done():
	case <-d.shutdown:
	case err := <-errc:
		return fmt.Errorf("serving api: %w", err)
	}
	d.log.Info("bangerd shutting down; vms keep running")
	d.events.close()
	// The forwards are this process's listeners; the next daemon starts
	// them again.
	d.closeForwards()
	shutCtx, c := context.WithTimeout(context.Background(), 5*time.Second)
	defer c()
	_ = srv.Shutdown(shutCtx)
	return nil
}

func (d *Daemon) requestShutdown() { d.once.Do(func() { close(d.shutdown) }) }
