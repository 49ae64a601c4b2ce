package system

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
)

// ProcessSpec describes a long-running program to start in the background.
// It is plain data so that callers can build and test it as a value.
type ProcessSpec struct {
	// Argv is the program and its arguments; argv[0] is looked up in PATH
	// when it contains no slash.
	Argv []string
	// Env is added to the inherited environment.
	Env []string
	// Dir is the working directory; empty means the caller's.
	Dir string
	// Stdin, Stdout and Stderr are attached to the process. Passing an
	// *os.File hands the descriptor to the child directly; any other value
	// is copied by a goroutine. Nil means /dev/null.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// NewSession starts the process in a new session (setsid), so that it
	// survives its parent and does not receive the terminal's signals.
	NewSession bool
	// DieWithParent asks the kernel to SIGKILL the process when the thread
	// that started it exits (Linux parent-death signal). It keeps a helper
	// process, such as a VMM's emulator, from outliving its owner.
	DieWithParent bool
	// ExtraFiles are inherited by the process as descriptors 3, 4, …
	ExtraFiles []*os.File
}

// Process is a started background process.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}

	mu      sync.Mutex
	state   *os.ProcessState
	waitErr error
}

// StartProcess starts spec and returns at once. The caller must eventually
// call Wait (or wait on Done) so the process is reaped.
func StartProcess(spec ProcessSpec) (*Process, error) {
	if len(spec.Argv) == 0 {
		return nil, errors.New("starting process: empty argv")
	}
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Env = append(os.Environ(), spec.Env...)
	cmd.Dir = spec.Dir
	cmd.Stdin = spec.Stdin
	cmd.Stdout = spec.Stdout
	cmd.Stderr = spec.Stderr
	cmd.ExtraFiles = spec.ExtraFiles
	attr := &syscall.SysProcAttr{Setsid: spec.NewSession}
	if spec.DieWithParent {
		attr.Pdeathsig = syscall.SIGKILL
	}
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		return nil, &CommandError{Argv: spec.Argv, ExitCode: -1, Err: err}
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go p.reap()
	return p, nil
}

func (p *Process) reap() {
	err := p.cmd.Wait()
	p.mu.Lock()
	p.state = p.cmd.ProcessState
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		p.waitErr = err
	}
	p.mu.Unlock()
	close(p.done)
}

// PID returns the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait blocks until the process exits and returns its exit status, which
// ExitStatus describes.
func (p *Process) Wait() (ExitStatus, error) {
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.waitErr != nil {
		return ExitStatus{}, fmt.Errorf("waiting for %s: %w", p.cmd.Path, p.waitErr)
	}
	return exitStatusOf(p.state), nil
}

// Signal sends sig to the process unless it has already exited.
func (p *Process) Signal(sig os.Signal) error {
	select {
	case <-p.done:
		return fmt.Errorf("signalling pid %d: %w", p.PID(), os.ErrProcessDone)
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signalling pid %d with %v: %w", p.PID(), sig, err)
	}
	return nil
}

// ExitStatus says how a process ended.
type ExitStatus struct {
	// Code is the exit code, or -1 when a signal killed the process.
	Code int
	// Signal is the signal that killed the process, or 0.
	Signal syscall.Signal
}

// Success reports a zero exit code.
func (s ExitStatus) Success() bool { return s.Code == 0 && s.Signal == 0 }

func (s ExitStatus) String() string {
	if s.Signal != 0 {
		return "killed by " + strings.ToLower(s.Signal.String())
	}
	return fmt.Sprintf("exit status %d", s.Code)
}

func exitStatusOf(st *os.ProcessState) ExitStatus {
	if st == nil {
		return ExitStatus{Code: -1}
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ExitStatus{Code: -1, Signal: ws.Signal()}
	}
	return ExitStatus{Code: st.ExitCode()}
}
