package forward

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Options tune a Forwarder; the zero value is ready to use.
type Options struct {
	// Log receives one line per forward started or stopped and per failed
	// connection to the guest; nil discards.
	Log *slog.Logger
	// DialTimeout bounds connecting to the guest; 5s when zero.
	DialTimeout time.Duration
	// UDPIdleTimeout closes a UDP session after this long without traffic
	// either way; 60s when zero.
	UDPIdleTimeout time.Duration
	// MaxUDPSessions bounds the client addresses one UDP forward serves at
	// once; datagrams from others are dropped. 1024 when zero.
	MaxUDPSessions int
	// UnprivilegedPortStart is net.ipv4.ip_unprivileged_port_start, for
	// error messages; read from /proc when zero.
	UnprivilegedPortStart int
}

// Forwarder runs the forwards of one guest. It is safe for concurrent use.
type Forwarder struct {
	guest netip.Addr
	opts  Options
	log   *slog.Logger

	mu     sync.Mutex
	active map[key]*forward
	closed bool
}

// New returns a Forwarder to the guest at addr, with no forwards yet.
func New(guest netip.Addr, opts Options) *Forwarder {
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.UDPIdleTimeout <= 0 {
		opts.UDPIdleTimeout = time.Minute
	}
	if opts.MaxUDPSessions <= 0 {
		opts.MaxUDPSessions = 1024
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Forwarder{guest: guest.Unmap(), opts: opts, log: log, active: map[key]*forward{}}
}

// forward is one running listener and its connections.
type forward struct {
	spec   Spec
	target netip.AddrPort
	closer io.Closer   // the listener or packet socket
	udp    *udpForward // UDP forwards only
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[io.Closer]struct{}
}

// track registers a connection to close on Stop; false when the forward
// is already stopping (the caller closes c itself).
func (fw *forward) track(c io.Closer) bool {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.ctx.Err() != nil {
		return false
	}
	fw.conns[c] = struct{}{}
	return true
}

func (fw *forward) untrack(c io.Closer) {
	fw.mu.Lock()
	delete(fw.conns, c)
	fw.mu.Unlock()
}

// stop closes the listener and every connection, and waits for them.
func (fw *forward) stop() {
	fw.mu.Lock()
	fw.cancel()
	fw.closer.Close()
	for c := range fw.conns {
		c.Close()
	}
	fw.mu.Unlock()
	fw.wg.Wait()
}

// Start listens for spec and forwards what arrives to the guest. A spec
// whose host address, port and protocol are already forwarded here is an
// error, as are the bind failures bindError explains.
func (f *Forwarder) Start(spec Spec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return fmt.Errorf("forwarding %s: the forwarder is closed", spec)
	}
	if cur, ok := f.active[spec.key()]; ok {
		return fmt.Errorf("forwarding %s: %s is already forwarded (%s); remove that forward first", spec, spec.HostAddrPort(), cur.spec)
	}
	ctx, cancel := context.WithCancel(context.Background())
	fw := &forward{spec: spec, target: netip.AddrPortFrom(f.guest, spec.GuestPort), ctx: ctx, cancel: cancel, conns: map[io.Closer]struct{}{}}
	var err error
	if spec.Proto == UDP {
		err = f.startUDP(fw)
	} else {
		err = f.startTCP(fw)
	}
	if err != nil {
		cancel()
		start := f.opts.UnprivilegedPortStart
		if start == 0 {
			start = readUnprivilegedPortStart()
		}
		return bindError(spec, err, start)
	}
	f.active[spec.key()] = fw
	f.log.Info("forward started", "forward", spec.String(), "target", fw.target.String())
	return nil
}

// Stop ends the forward for spec's host address, port and protocol,
// closing its listener and every connection through it. Stopping a
// forward that is not running is not an error.
func (f *Forwarder) Stop(spec Spec) {
	f.mu.Lock()
	fw, ok := f.active[spec.key()]
	delete(f.active, spec.key())
	f.mu.Unlock()
	if ok {
		fw.stop()
		f.log.Info("forward stopped", "forward", fw.spec.String())
	}
}

// Specs lists the running forwards, ordered by protocol, address and port.
func (f *Forwarder) Specs() []Spec {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Spec, 0, len(f.active))
	for _, fw := range f.active {
		out = append(out, fw.spec)
	}
	slices.SortFunc(out, func(a, b Spec) int {
		return cmp.Or(cmp.Compare(a.Proto, b.Proto), a.HostAddrPort().Compare(b.HostAddrPort()))
	})
	return out
}

// Close stops every forward; later Starts fail.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	f.closed = true
	all := f.active
	f.active = map[key]*forward{}
	f.mu.Unlock()
	for _, fw := range all {
		fw.stop()
	}
	return nil
}

// listenConfig is how forwards bind: plain sockets, nothing shared.
func listenConfig() *net.ListenConfig { return &net.ListenConfig{} }

// isClosed reports an error from a socket closed by Stop.
func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }
