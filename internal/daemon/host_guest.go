package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"banger/internal/api"
	"banger/internal/guest"
	"banger/internal/vm"
)

// hostGuest reaches into booted guests over SSH with banger's key and the
// pinned host key. It keeps one connection per VM for exec, cp and the
// like, so a command costs one SSH session, not a handshake.
type hostGuest struct {
	keys *sshKeys

	mu    sync.Mutex
	conns map[string]*guest.Client // by VM id
	// parked holds the connections of suspended VMs, by VM id, unused
	// until the VM is restored (Park).
	parked map[string]*guest.Client
	// clocks holds the commands waiting in guests for the host's time,
	// by VM id (ArmClock).
	clocks map[string]*armedClock
}

// armedClock is a command started in a guest before it was saved, which
// reads the host's time from its stdin and sets the clock to it.
type armedClock struct {
	w      *io.PipeWriter
	p      api.ExecProcess
	cancel context.CancelFunc
}

// disarm ends the waiting command (its read fails) and what follows it.
func (a *armedClock) disarm() {
	_ = a.w.Close()
	a.cancel()
}

// armedClockCommand says it is ready, then waits for a line holding
// seconds.nanoseconds since the epoch and sets the clock to it; an empty
// stdin ends it. With perl (Debian's perl-base is essential) the process
// that waits sets the clock itself, with clock_settime: a guest just
// restored under emulation loads no program, where date(1) would cost it
// a quarter of a second. Without perl, date does it. BANGER_CLOCK_DRY
// makes the perl say what it would set instead (the tests).
const armedClockCommand = `command -v perl >/dev/null 2>&1 && exec perl -e '` + armedClockPerl + `'
echo ready; read -r t && exec date -u -s "@$t" >/dev/null`

// armedClockPerl is armedClockCommand's perl (no single quotes).
const armedClockPerl = `
my $arch = "";
if (open(my $f, "<", "/proc/sys/kernel/arch")) { $arch = <$f> // "" }
$| = 1;
print "ready\n";
my $t = <STDIN>;
defined $t or exit 1;
my ($s, $n) = $t =~ /^(\d+)\.(\d{9})$/ or exit 2;
if ($ENV{BANGER_CLOCK_DRY}) { print "would set the clock to $s.$n\n"; exit 0 }
# clock_settime(CLOCK_REALTIME) is system call 227 on x86_64.
exit 0 if $arch eq "x86_64\n" && syscall(227, 0, pack("q q", $s, $n)) == 0;
open(STDOUT, ">", "/dev/null");
exec("date", "-u", "-s", "\@$s.$n") or exit 127;
`

// readySignal closes ready at the first "ready" line written to it.
type readySignal struct {
	ready chan struct{}
	seen  bool
	buf   []byte
}

func (r *readySignal) Write(p []byte) (int, error) {
	if !r.seen {
		r.buf = append(r.buf, p...)
		if bytes.Contains(r.buf, []byte("ready\n")) {
			r.seen = true
			close(r.ready)
		}
	}
	return len(p), nil
}

func newHostGuest(keys *sshKeys) *hostGuest {
	return &hostGuest{keys: keys, conns: map[string]*guest.Client{}, parked: map[string]*guest.Client{}, clocks: map[string]*armedClock{}}
}

// take removes and returns m[id] under mu.
func take[T any](mu *sync.Mutex, m map[string]T, id string) T {
	mu.Lock()
	defer mu.Unlock()
	v := m[id]
	delete(m, id)
	return v
}

// parkedPing bounds the check that a parked connection still answers
// after its VM was restored; a connection that does not is replaced.
const parkedPing = 2 * time.Second

// dialTimeout bounds the wait for a guest's SSH server.
const dialTimeout = 5 * time.Minute

func (h *hostGuest) dial(ctx context.Context, v *vm.VM, ciphers []string) (*guest.Client, error) {
	user, err := h.keys.user()
	if err != nil {
		return nil, err
	}
	cb, err := h.keys.knownHosts().Callback()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	c, err := guest.WaitReady(ctx, v.IP.String(), guest.Config{User: "root", Signer: user.Signer, HostKeyCallback: cb, Ciphers: ciphers})
	if err != nil {
		return nil, fmt.Errorf("waiting for ssh on %s: %w (the console log shows how far the guest booted)", v.IP, err)
	}
	return c, nil
}

// WaitSSH returns once the guest's SSH server answers. The connection it
// makes is kept for the commands that follow (exec, cp), so a create
// that waited for SSH leaves the first exec nothing to dial.
func (h *hostGuest) WaitSSH(ctx context.Context, v *vm.VM) (guest.Readiness, error) {
	if h.unpark(ctx, v) {
		return guest.Readiness{}, nil
	}
	c, fresh, err := h.conn(ctx, v)
	if err != nil || !fresh {
		return guest.Readiness{}, err
	}
	return c.Readiness(), nil
}

func (h *hostGuest) Connect(ctx context.Context, v *vm.VM) (GuestConn, error) {
	// The builder's connection carries uploads: prefer the cipher guests
	// decrypt fastest under emulation.
	return h.dial(ctx, v, guest.BulkCiphers())
}

// conn returns the kept connection to v's guest, dialling one when there
// is none. fresh reports whether it was dialled now.
func (h *hostGuest) conn(ctx context.Context, v *vm.VM) (c *guest.Client, fresh bool, err error) {
	h.mu.Lock()
	c = h.conns[v.ID]
	h.mu.Unlock()
	if c != nil {
		return c, false, nil
	}
	if c, err = h.dial(ctx, v, guest.BulkCiphers()); err != nil {
		return nil, false, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if old := h.conns[v.ID]; old != nil {
		// Another caller dialled at the same time: keep one.
		c.Close()
		return old, false, nil
	}
	h.conns[v.ID] = c
	go h.dropWhenClosed(v.ID, c)
	return c, true, nil
}

// dropWhenClosed forgets a connection once it ends (the guest stopped or
// the network broke), so the next caller dials again.
func (h *hostGuest) dropWhenClosed(id string, c *guest.Client) {
	_ = c.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conns[id] == c {
		delete(h.conns, id)
	}
	if h.parked[id] == c {
		delete(h.parked, id)
	}
}

func (h *hostGuest) Exec(ctx context.Context, v *vm.VM, req guest.ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (api.ExecProcess, error) {
	c, fresh, err := h.conn(ctx, v)
	if err != nil {
		return nil, err
	}
	p, err := c.Start(ctx, req, stdin, stdout, stderr)
	if err != nil && !fresh {
		// A kept connection can break silently (a guest rebooted): dial
		// once more before giving up. Nothing ran, so nothing repeats.
		h.drop(v.ID, c)
		if c, _, err = h.conn(ctx, v); err != nil {
			return nil, err
		}
		p, err = c.Start(ctx, req, stdin, stdout, stderr)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (h *hostGuest) drop(id string, c *guest.Client) {
	h.mu.Lock()
	if h.conns[id] == c {
		delete(h.conns, id)
	}
	h.mu.Unlock()
	c.Close()
}

func (h *hostGuest) Forget(v *vm.VM) {
	h.DisarmClock(v)
	h.mu.Lock()
	c, p := h.conns[v.ID], h.parked[v.ID]
	delete(h.conns, v.ID)
	delete(h.parked, v.ID)
	h.mu.Unlock()
	for _, c := range []*guest.Client{c, p} {
		if c != nil {
			c.Close()
		}
	}
}

// Park sets aside the kept connection of a VM being saved, with TCP
// keepalives off: its guest-side state is in the snapshot, so when the
// VM is restored in this daemon's lifetime the connection answers again
// and WaitSSH needs no handshake (seconds for a guest just restored under
// emulation). Forget closes it.
func (h *hostGuest) Park(v *vm.VM) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.conns[v.ID]
	if c == nil {
		return
	}
	delete(h.conns, v.ID)
	if err := c.KeepAlive(false); err != nil {
		c.Close()
		return
	}
	if old := h.parked[v.ID]; old != nil {
		old.Close()
	}
	h.parked[v.ID] = c
}

// unpark takes back v's parked connection and reports whether it still
// answers; one that does not is closed.
func (h *hostGuest) unpark(ctx context.Context, v *vm.VM) bool {
	c := take(&h.mu, h.parked, v.ID)
	if c == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, parkedPing)
	defer cancel()
	if err := errors.Join(c.KeepAlive(true), c.Ping(ctx)); err != nil {
		c.Close()
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if old := h.conns[v.ID]; old != nil {
		old.Close()
	}
	h.conns[v.ID] = c
	return true
}

// ArmClock starts, in v's running guest, a command that waits for the
// host's time (a shell blocked in read), before v is saved. SetClock
// after the restore then costs one line written to it, not an SSH session
// and a shell started in a guest whose code is all cold (most of a second
// under emulation). It replaces a command armed before.
func (h *hostGuest) ArmClock(ctx context.Context, v *vm.VM) error {
	c, _, err := h.conn(ctx, v)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithCancel(context.Background())
	r, w := io.Pipe()
	sig := &readySignal{ready: make(chan struct{})}
	p, err := c.Start(pctx, guest.ExecRequest{Argv: []string{"sh", "-c", armedClockCommand}}, r, sig, nil)
	if err != nil {
		cancel()
		return err
	}
	a := &armedClock{w: w, p: p, cancel: cancel}
	// Armed only once the shell waits in read: saved any earlier, the
	// restored guest would still have to start it, which is the cost
	// this spares.
	exited := make(chan error, 1)
	go func() {
		code, err := p.Wait()
		if err == nil {
			err = fmt.Errorf("exited %d", code)
		}
		exited <- err
	}()
	select {
	case <-sig.ready:
	case err := <-exited:
		a.disarm()
		return fmt.Errorf("the clock command ended before it was ready: %w", err)
	case <-ctx.Done():
		a.disarm()
		return fmt.Errorf("waiting for the clock command to start: %w", ctx.Err())
	}
	h.mu.Lock()
	old := h.clocks[v.ID]
	h.clocks[v.ID] = a
	h.mu.Unlock()
	if old != nil {
		old.disarm()
	}
	return nil
}

// DisarmClock ends the command ArmClock started in v's guest, if any.
func (h *hostGuest) DisarmClock(v *vm.VM) {
	a := take(&h.mu, h.clocks, v.ID)
	if a != nil {
		a.disarm()
	}
}

// SetClock sets v's clock to now() through the command ArmClock left
// waiting in it. It reports false when there is none or it failed; the
// caller then sets the clock another way.
func (h *hostGuest) SetClock(ctx context.Context, v *vm.VM, now func() time.Time) bool {
	a := take(&h.mu, h.clocks, v.ID)
	if a == nil {
		return false
	}
	defer a.disarm()
	t := now()
	if _, err := fmt.Fprintf(a.w, "%d.%09d\n", t.Unix(), t.Nanosecond()); err != nil {
		return false
	}
	_ = a.w.Close()
	done := make(chan bool, 1)
	go func() {
		code, err := a.p.Wait()
		done <- err == nil && code == 0
	}()
	select {
	case ok := <-done:
		return ok
	case <-ctx.Done():
		return false
	}
}

// ErrNoAgent says a template's clone has no identity agent waiting: the
// guest refused the connection (a template saved before agents existed).
var ErrNoAgent = errors.New("no identity agent answers")

// agentWait bounds the wait for a clone's identity agent to accept.
const agentWait = 10 * time.Second

func (h *hostGuest) GiveIdentity(ctx context.Context, t *vm.VM, token string, id guest.Identity, now func() time.Time) (string, error) {
	addr := netip.AddrPortFrom(t.IP, guest.AgentPort).String()
	ctx, cancel := context.WithTimeout(ctx, agentWait)
	defer cancel()
	for connect := 100 * time.Millisecond; ; connect = min(2*connect, time.Second) {
		start := time.Now()
		d := net.Dialer{Timeout: connect}
		conn, err := d.DialContext(ctx, "tcp", addr)
		switch {
		case err == nil:
			defer conn.Close()
			return guest.GiveIdentity(ctx, conn, token, id, now)
		case errors.Is(err, syscall.ECONNREFUSED):
			return "", fmt.Errorf("%w at %s", ErrNoAgent, addr)
		case ctx.Err() != nil:
			return "", fmt.Errorf("waiting for the identity agent at %s: %w (last failure: %v)", addr, ctx.Err(), err)
		}
		// An attempt that failed at once (no route yet) waits out its
		// slot rather than spinning.
		select {
		case <-ctx.Done():
		case <-time.After(connect - time.Since(start)):
		}
	}
}
