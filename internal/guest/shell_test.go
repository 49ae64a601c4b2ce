package guest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// ptyRequest is the payload of an SSH "pty-req" (RFC 4254 6.2).
type ptyRequest struct {
	Term                         string
	Columns, Rows, Width, Height uint32
	Modes                        string
}

// windowChange is the payload of an SSH "window-change" (RFC 4254 6.7).
type windowChange struct {
	Columns, Rows, Width, Height uint32
}

// shellProc is one command the fake guest runs through a real shell, the
// way sshd does: in its own session, on pipes or on a pseudo-terminal.
type shellProc struct {
	cmd     *exec.Cmd
	ptm     *os.File // the terminal's master side, when there is one
	outDone chan struct{}
	mu      sync.Mutex
	exited  bool
}

// useShell makes g run exec requests through sh (a path) in a fresh home
// directory, with bin (when non-empty) first in PATH.
func (g *fakeGuest) useShell(sh, bin string) {
	g.shell, g.home = sh, g.t.TempDir()
	g.path = os.Getenv("PATH")
	if bin != "" {
		g.path = bin + string(os.PathListSeparator) + g.path
	}
}

func (g *fakeGuest) startShell(line string, ch ssh.Channel, pty *ptyRequest) (*shellProc, error) {
	cmd := exec.Command(g.shell, "-c", line)
	cmd.Dir = g.home
	cmd.Env = []string{"PATH=" + g.path, "HOME=" + g.home, "LC_ALL=C"}
	p := &shellProc{cmd: cmd, outDone: make(chan struct{})}
	if pty == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		go func() { io.Copy(stdin, ch); stdin.Close() }()
		close(p.outDone)
		return p, nil
	}
	cmd.Env = append(cmd.Env, "TERM="+pty.Term)
	ptm, pts, err := openPty()
	if err != nil {
		return nil, err
	}
	p.ptm = ptm
	p.resize(pty.Rows, pty.Columns)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	err = cmd.Start()
	pts.Close()
	if err != nil {
		ptm.Close()
		return nil, err
	}
	go io.Copy(ptm, ch)
	go func() { io.Copy(ch, ptm); close(p.outDone) }()
	return p, nil
}

// finish waits for the command, reports its status or signal as sshd does,
// and closes the channel.
func (p *shellProc) finish(ch ssh.Channel) {
	err := p.cmd.Wait()
	<-p.outDone // a terminal's output ends with EIO once the command is gone
	if p.ptm != nil {
		p.ptm.Close()
	}
	p.mu.Lock()
	p.exited = true
	p.mu.Unlock()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() {
			name := strings.TrimPrefix(unix.SignalName(ws.Signal()), "SIG")
			ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
				Signal     string
				CoreDumped bool
				Error      string
				Lang       string
			}{Signal: name}))
			ch.Close()
			return
		}
	}
	ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(p.cmd.ProcessState.ExitCode())}))
	ch.Close()
}

func (p *shellProc) signal(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if sig := unix.SignalNum("SIG" + name); sig != 0 && !p.exited {
		p.cmd.Process.Signal(sig)
	}
}

// kill ends what is left of the command's session when the channel closes.
func (p *shellProc) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.exited {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
}

func (p *shellProc) resize(rows, cols uint32) {
	if p.ptm == nil {
		return
	}
	rc, err := p.ptm.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(rows), Col: uint16(cols)})
	})
}

// openPty opens a new pseudo-terminal pair.
func openPty() (ptm, pts *os.File, err error) {
	ptm, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	rc, err := ptm.SyscallConn()
	if err != nil {
		ptm.Close()
		return nil, nil, err
	}
	var n int
	var ierr error
	rc.Control(func(fd uintptr) {
		if ierr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ierr == nil {
			n, ierr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
		}
	})
	if ierr != nil {
		ptm.Close()
		return nil, nil, ierr
	}
	pts, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		ptm.Close()
		return nil, nil, err
	}
	return ptm, pts, nil
}

// requirePty skips a test on hosts without a usable /dev/ptmx.
func requirePty(t *testing.T) {
	t.Helper()
	ptm, pts, err := openPty()
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	ptm.Close()
	pts.Close()
}

// writeScript writes an executable shell script named name into dir.
func writeScript(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
}
