package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// killGrace is how long a process whose context ended has between SIGTERM
// and SIGKILL.
const killGrace = 2 * time.Second

// closeGrace bounds the wait for the guest to acknowledge a closed session
// after SIGKILL; a guest that stopped answering is abandoned.
const closeGrace = 2 * time.Second

// Process is a command started in the guest by Start. Its methods are safe
// for concurrent use.
type Process struct {
	s    *ssh.Session
	line string
	done chan struct{}
	code int
	err  error
}

// Start runs req in a new session on the connection and returns at once.
// stdin feeds the command (its EOF becomes the command's EOF; nil gives an
// empty input); stdout and stderr receive its output (nil discards). Start
// does not wait for stdin to end, so a reader that blocks forever (a
// terminal) does not keep Wait from returning.
//
// When ctx ends before the command does, the command gets SIGTERM, then
// SIGKILL after two seconds, and the session is closed; Wait then reports
// ctx's error.
func (c *Client) Start(ctx context.Context, req ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (*Process, error) {
	line, err := req.Line()
	if err != nil {
		return nil, err
	}
	s, err := c.conn.NewSession()
	if err != nil {
		return nil, c.sessionError(err)
	}
	if req.TTY {
		if err := requestPty(s, req); err != nil {
			s.Close()
			return nil, err
		}
	}
	s.Stdout, s.Stderr = orDiscard(stdout), orDiscard(stderr)
	in, err := s.StdinPipe()
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("exec: %w", err)
	}
	if err := s.Start(line); err != nil {
		s.Close()
		return nil, fmt.Errorf("starting %s in the guest at %s: %w", argvString(req.Argv), c.addr, err)
	}
	go pumpStdin(in, stdin)
	p := &Process{s: s, line: line, done: make(chan struct{})}
	go p.watch(ctx)
	return p, nil
}

func requestPty(s *ssh.Session, req ExecRequest) error {
	term := req.Term
	if term == "" {
		term = "xterm-256color"
	}
	rows, cols := req.Size.Rows, req.Size.Cols
	if rows == 0 || cols == 0 {
		rows, cols = 24, 80
	}
	modes := ssh.TerminalModes{ssh.ECHO: 1, ssh.TTY_OP_ISPEED: 38400, ssh.TTY_OP_OSPEED: 38400}
	if err := s.RequestPty(term, rows, cols, modes); err != nil {
		return fmt.Errorf("exec: requesting a terminal: %w", err)
	}
	return nil
}

// sessionError explains a session the guest refused to open.
func (c *Client) sessionError(err error) error {
	var oe *ssh.OpenChannelError
	if errors.As(err, &oe) && oe.Reason == ssh.Prohibited {
		return fmt.Errorf("opening ssh session to %s: %w (the guest's sshd limits sessions per connection: MaxSessions in /etc/ssh/sshd_config, 10 by default)", c.addr, err)
	}
	return fmt.Errorf("opening ssh session to %s: %w", c.addr, err)
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// pumpStdin copies stdin to the session and then sends EOF. It ends early
// when the session goes away (the write fails).
func pumpStdin(in io.WriteCloser, stdin io.Reader) {
	if stdin != nil {
		buf := make([]byte, 64<<10)
		_, _ = io.CopyBuffer(in, stdin, buf)
	}
	_ = in.Close()
}

func (p *Process) watch(ctx context.Context) {
	defer close(p.done)
	waited := make(chan error, 1)
	go func() { waited <- p.s.Wait() }()
	select {
	case err := <-waited:
		p.code, p.err = exitStatus(p.line, err)
		p.s.Close()
		return
	case <-ctx.Done():
	}
	_ = p.s.Signal(ssh.SIGTERM)
	t := time.NewTimer(killGrace)
	defer t.Stop()
	select {
	case <-waited:
	case <-t.C:
		_ = p.s.Signal(ssh.SIGKILL)
		p.s.Close()
		t.Reset(closeGrace)
		select {
		case <-waited:
		case <-t.C:
		}
	}
	p.s.Close()
	p.code, p.err = -1, fmt.Errorf("running guest command: %w", ctx.Err())
}

// Wait waits for the command to end and returns its exit status: the
// command's own, or 128+N when signal N killed it, as shells report it.
// The error is non-nil only when no status is known: the context ended,
// the connection broke, or the guest closed the session without one.
// All of the command's output has been written when Wait returns, unless
// the context ended.
func (p *Process) Wait() (int, error) {
	<-p.done
	return p.code, p.err
}

// Resize tells the command's terminal its new size (SIGWINCH in the guest).
func (p *Process) Resize(rows, cols int) error {
	if err := p.s.WindowChange(rows, cols); err != nil {
		return fmt.Errorf("resizing the guest terminal: %w", err)
	}
	return nil
}

// Signal sends the command a signal by name ("INT", "SIGTERM", "hup").
// OpenSSH's sshd delivers ABRT, ALRM, FPE, HUP, ILL, INT, KILL, PIPE, QUIT,
// SEGV, TERM, USR1 and USR2; others are refused here.
func (p *Process) Signal(name string) error {
	sig, err := ParseSignal(name)
	if err != nil {
		return err
	}
	if err := p.s.Signal(sig); err != nil {
		return fmt.Errorf("sending SIG%s to the guest command: %w", sig, err)
	}
	return nil
}

// ParseSignal turns "INT", "SIGINT" or "int" into the SSH signal name.
func ParseSignal(name string) (ssh.Signal, error) {
	n := strings.TrimPrefix(strings.ToUpper(name), "SIG")
	switch ssh.Signal(n) {
	case ssh.SIGABRT, ssh.SIGALRM, ssh.SIGFPE, ssh.SIGHUP, ssh.SIGILL, ssh.SIGINT, ssh.SIGKILL,
		ssh.SIGPIPE, ssh.SIGQUIT, ssh.SIGSEGV, ssh.SIGTERM, ssh.SIGUSR1, ssh.SIGUSR2:
		return ssh.Signal(n), nil
	}
	return "", fmt.Errorf("signal %q cannot be sent over ssh (use one of ABRT, ALRM, FPE, HUP, ILL, INT, KILL, PIPE, QUIT, SEGV, TERM, USR1, USR2)", name)
}

// exitStatus turns a session's end into (status, nil), or (-1, err) when
// the guest sent no status.
func exitStatus(line string, err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		if sig := ee.Signal(); sig != "" {
			return 128 + signalNumber(sig), nil
		}
		return ee.ExitStatus(), nil
	}
	var missing *ssh.ExitMissingError
	if errors.As(err, &missing) {
		return -1, fmt.Errorf("running guest command: the session closed without an exit status: %w", err)
	}
	return -1, fmt.Errorf("running guest command: %w", err)
}

// signalNumber is the Linux number of an SSH signal name ("KILL",
// "BUS@openssh.com"), or 127 (128+127 = 255) when it is unknown.
func signalNumber(name string) int {
	name, _, _ = strings.Cut(name, "@")
	if n := unix.SignalNum("SIG" + name); n != 0 {
		return int(n)
	}
	return 127
}

// Exec runs req and waits for it: stdin passed through (with its EOF),
// stdout and stderr kept apart (merged on stdout with a TTY), resize
// applied to the TTY as it arrives. It returns the command's exit status
// (128+N for a death by signal N); err is non-nil only when there is no
// status (see Process.Wait). Many Execs may run at once on one Client.
func (c *Client) Exec(ctx context.Context, req ExecRequest, stdin io.Reader, stdout, stderr io.Writer, resize <-chan WindowSize) (int, error) {
	p, err := c.Start(ctx, req, stdin, stdout, stderr)
	if err != nil {
		return -1, err
	}
	for {
		select {
		case <-p.done:
			return p.Wait()
		case ws, ok := <-resize:
			if !ok {
				resize = nil
				continue
			}
			_ = p.Resize(ws.Rows, ws.Cols)
		}
	}
}

// argvString renders argv for messages, each argument quoted as needed.
func argvString(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = Quote(a)
	}
	return strings.Join(q, " ")
}
