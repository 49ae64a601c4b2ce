package guest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Config says how to reach a guest.
type Config struct {
	// User to log in as; "root" when empty.
	User string
	// Signer is banger's user key (see EnsureUserKey). Required.
	Signer ssh.Signer
	// HostKeyCallback verifies the guest's host key, normally
	// (*KnownHosts).Callback. Required: banger never trusts on first use.
	HostKeyCallback ssh.HostKeyCallback
	// HostKeyAlgorithms the client accepts; ssh-ed25519 (what banger pins)
	// when empty.
	HostKeyAlgorithms []string
	// HandshakeTimeout bounds one connection attempt (TCP connect plus SSH
	// handshake); 30s when zero, which leaves room for guests under software
	// emulation, where a handshake alone takes most of a second.
	HandshakeTimeout time.Duration
	// PollInterval is how long WaitReady pauses between attempts; 75ms when zero.
	PollInterval time.Duration
	// Ciphers are offered in this order; x/crypto's default when empty.
	// BulkCiphers suits connections that upload much data.
	Ciphers []string
	// Log receives one debug line per failed attempt; nil discards.
	Log *slog.Logger
}

func (c Config) clientConfig() (*ssh.ClientConfig, error) {
	if c.Signer == nil {
		return nil, errors.New("ssh config: no user key")
	}
	if c.HostKeyCallback == nil {
		return nil, errors.New("ssh config: no host key callback")
	}
	user := c.User
	if user == "" {
		user = "root"
	}
	algos := c.HostKeyAlgorithms
	if len(algos) == 0 {
		algos = []string{ssh.KeyAlgoED25519}
	}
	cc := &ssh.ClientConfig{
		User:              user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(c.Signer)},
		HostKeyCallback:   c.HostKeyCallback,
		HostKeyAlgorithms: algos,
	}
	cc.Ciphers = c.Ciphers
	return cc, nil
}

func (c Config) handshakeTimeout() time.Duration {
	if c.HandshakeTimeout > 0 {
		return c.HandshakeTimeout
	}
	return 30 * time.Second
}

func (c Config) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Client is one SSH connection to a guest. It is safe for concurrent use:
// each Run, Upload or Download opens its own session on the connection.
type Client struct {
	conn  *ssh.Client
	tcp   *net.TCPConn // nil when the connection is not TCP
	addr  string
	ready Readiness
}

// Readiness says how a connection came about: when its TCP connection was
// made and its handshake completed, and, for one WaitReady made, whether an
// earlier attempt found the port closed.
type Readiness struct {
	// Attempts is the number of connection attempts WaitReady made.
	Attempts int
	// Refused reports that an earlier attempt found the port closed
	// (connection refused): the SSH server started listening between that
	// attempt and Connected.
	Refused bool
	// LastFailed is when the last attempt before the connection that was
	// made started, zero when the first attempt connected. An attempt
	// refused or unanswered shortly before Connected bounds when the
	// server started listening as Refused does.
	LastFailed time.Time
	// Connected is when the TCP connection was made.
	Connected time.Time
	// Answered is when the SSH handshake completed.
	Answered time.Time
}

// Readiness reports how the connection was made.
func (c *Client) Readiness() Readiness { return c.ready }

// withPort adds SSH's port to an address that has none.
func withPort(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return net.JoinHostPort(strings.Trim(addr, "[]"), "22")
	}
	return addr
}

// Dial makes one connection attempt to addr ("host" or "host:port") and
// completes the SSH handshake, bounded by ctx and cfg.HandshakeTimeout.
func Dial(ctx context.Context, addr string, cfg Config) (*Client, error) {
	return dialWithin(ctx, addr, cfg, 0)
}

// dialWithin is Dial with the TCP connect bounded by connectTimeout (when not
// zero) as well.
func dialWithin(ctx context.Context, addr string, cfg Config, connectTimeout time.Duration) (*Client, error) {
	cc, err := cfg.clientConfig()
	if err != nil {
		return nil, err
	}
	addr = withPort(addr)
	ctx, cancel := context.WithTimeout(ctx, cfg.handshakeTimeout())
	defer cancel()
	d := net.Dialer{Timeout: connectTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to ssh at %s: %w", addr, err)
	}
	connected := time.Now()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// Cancelling ctx interrupts a handshake in progress.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	sc, chans, reqs, err := ssh.NewClientConn(conn, addr, cc)
	if !stop() && err == nil {
		sc.Close()
		err = ctx.Err()
	}
	if err != nil {
		conn.Close()
		if ctx.Err() != nil && !isHostKeyError(err) {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return nil, fmt.Errorf("ssh handshake with %s: %w", addr, err)
	}
	conn.SetDeadline(time.Time{})
	ready := Readiness{Attempts: 1, Connected: connected, Answered: time.Now()}
	tcp, _ := conn.(*net.TCPConn)
	return &Client{conn: ssh.NewClient(sc, chans, reqs), tcp: tcp, addr: addr, ready: ready}, nil
}

// KeepAlive turns the connection's TCP keepalive probes off or on again.
// Off, a connection to a guest whose VM is saved (its TCP state is in the
// snapshot) outlives the save: nothing is sent on it, so nothing times
// out, and the restored guest answers on it as if nothing happened.
func (c *Client) KeepAlive(on bool) error {
	if c.tcp == nil {
		return nil
	}
	return c.tcp.SetKeepAlive(on)
}

// isHostKeyError reports whether err says the guest presented a key other
// than the pinned one (or none is pinned): retrying cannot fix that.
func isHostKeyError(err error) bool {
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	return errors.As(err, &ke) || errors.As(err, &re)
}

// A connection attempt of WaitReady that nothing answers is given up
// after firstConnectTimeout for the first quickConnectFor of the wait, then
// after twice as long each time up to maxConnectTimeout. The kernel resends
// an unanswered SYN only after a second: a guest that takes its address a
// moment after one attempt's SYN (a clone moving to its own, a booting
// guest's initramfs) answers the next attempt at once instead. Quick
// attempts through a whole boot also keep the connection close to when the
// guest's sshd started listening, which anchors the boot timeline; a guest
// that has not answered for quickConnectFor may be one that answers slowly.
const (
	firstConnectTimeout = 100 * time.Millisecond
	quickConnectFor     = 15 * time.Second
	maxConnectTimeout   = 8 * time.Second
)

// nextConnectTimeout is the connect timeout of the attempt after one that
// nothing answered within cur, waited into the wait.
func nextConnectTimeout(cur, waited time.Duration) time.Duration {
	if waited < quickConnectFor {
		return firstConnectTimeout
	}
	return min(2*cur, maxConnectTimeout)
}

// WaitReady polls addr until the guest's SSH server completes a handshake,
// and returns that connection. It retries refused, reset and timed-out
// attempts every cfg.PollInterval until ctx ends, but stops at once when the
// guest presents a host key other than the pinned one. The error on timeout
// carries the last attempt's failure.
func WaitReady(ctx context.Context, addr string, cfg Config) (*Client, error) {
	interval := cfg.PollInterval
	if interval <= 0 {
		interval = 75 * time.Millisecond
	}
	log := cfg.log()
	start := time.Now()
	var last error // the last failure not caused by ctx ending
	refused := false
	connect := firstConnectTimeout
	var lastFailed time.Time
	for attempt := 1; ; attempt++ {
		tried := time.Now()
		c, err := dialWithin(ctx, addr, cfg, connect)
		if err == nil {
			c.ready.Attempts, c.ready.Refused, c.ready.LastFailed = attempt, refused, lastFailed
			log.Debug("ssh ready", "addr", addr, "attempts", attempt, "elapsed", time.Since(start))
			return c, nil
		}
		lastFailed = tried
		if errors.Is(err, syscall.ECONNREFUSED) {
			refused = true
		}
		if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() && !ctxEnded(ctx) {
			connect = nextConnectTimeout(connect, time.Since(start))
		}
		if isHostKeyError(err) {
			return nil, fmt.Errorf("waiting for ssh: the guest at %s presented a host key banger did not pin for it (was the VM re-created outside banger?): %w", addr, err)
		}
		log.Debug("ssh not ready", "addr", addr, "attempt", attempt, "err", err)
		if last == nil || !ctxEnded(ctx) {
			last = err
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("waiting for ssh at %s after %d attempts in %s: %w (last failure: %v)",
				withPort(addr), attempt, time.Since(start).Round(time.Millisecond), ctx.Err(), last)
		case <-t.C:
		}
	}
}

// ctxEnded reports whether ctx is done or its deadline has passed (a dial
// can fail on the deadline a moment before ctx itself reports it).
func ctxEnded(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// Close closes the connection and every session on it.
func (c *Client) Close() error { return c.conn.Close() }

// Addr is the host:port the client is connected to.
func (c *Client) Addr() string { return c.addr }

// Command is one command line run by the guest user's shell.
type Command struct {
	// Line is passed to the remote shell as is; quote arguments with Quote.
	Line string
	// Stdin feeds the command; nil gives it an empty input.
	Stdin io.Reader
	// Stdout and Stderr receive the command's output as it is produced;
	// nil discards.
	Stdout, Stderr io.Writer
}

// ExitError reports a command that ran and exited non-zero or by a signal.
type ExitError struct {
	Line   string
	Code   int
	Signal string
	// Stderr holds the tail of the command's standard error, when the caller
	// did not take it (Output).
	Stderr string
}

func (e *ExitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "guest command %q ", e.Line)
	if e.Signal != "" {
		fmt.Fprintf(&b, "killed by signal %s", e.Signal)
	} else {
		fmt.Fprintf(&b, "exited with status %d", e.Code)
	}
	if s := strings.TrimSpace(e.Stderr); s != "" {
		b.WriteString(": ")
		b.WriteString(s)
	}
	return b.String()
}

// Run runs cmd in a new session and waits for it. A non-zero exit is an
// *ExitError. Cancelling ctx sends the command SIGKILL and closes the session.
func (c *Client) Run(ctx context.Context, cmd Command) error {
	s, err := c.conn.NewSession()
	if err != nil {
		return fmt.Errorf("opening ssh session to %s: %w", c.addr, err)
	}
	defer s.Close()
	s.Stdin, s.Stdout, s.Stderr = cmd.Stdin, cmd.Stdout, cmd.Stderr
	if err := s.Start(cmd.Line); err != nil {
		return fmt.Errorf("starting guest command %q: %w", cmd.Line, err)
	}
	return wait(ctx, s, cmd.Line)
}

func wait(ctx context.Context, s *ssh.Session, line string) error {
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err := <-done:
		return exitError(line, err)
	case <-ctx.Done():
		s.Signal(ssh.SIGKILL)
		s.Close()
		return fmt.Errorf("running guest command %q: %w", line, ctx.Err())
	}
}

func exitError(line string, err error) error {
	if err == nil {
		return nil
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Line: line, Code: ee.ExitStatus(), Signal: ee.Signal()}
	}
	var missing *ssh.ExitMissingError
	if errors.As(err, &missing) {
		return fmt.Errorf("running guest command %q: connection closed before it exited: %w", line, err)
	}
	return fmt.Errorf("running guest command %q: %w", line, err)
}

// Output runs line and returns its standard output. On a non-zero exit the
// *ExitError carries the tail of standard error.
func (c *Client) Output(ctx context.Context, line string) ([]byte, error) {
	var stdout bytes.Buffer
	stderr := &tailBuffer{max: 4096}
	err := c.Run(ctx, Command{Line: line, Stdout: &stdout, Stderr: stderr})
	var ee *ExitError
	if errors.As(err, &ee) {
		ee.Stderr = stderr.String()
	}
	return stdout.Bytes(), err
}

// Download writes the guest file at remotePath to w.
func (c *Client) Download(ctx context.Context, remotePath string, w io.Writer) error {
	stderr := &tailBuffer{max: 4096}
	err := c.Run(ctx, Command{Line: "cat -- " + Quote(remotePath), Stdout: w, Stderr: stderr})
	var ee *ExitError
	if errors.As(err, &ee) {
		ee.Stderr = stderr.String()
	}
	if err != nil {
		return fmt.Errorf("downloading %s from %s: %w", remotePath, c.addr, err)
	}
	return nil
}

// Quote quotes s for a POSIX shell.
func Quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:@,+%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.buf) }
