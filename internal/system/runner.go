package system

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Runner runs a host command given as argv. Implementations must not invoke a
// shell: argv[0] is the program and the rest are its arguments.
type Runner interface {
	// Run runs the command and discards its standard output.
	Run(ctx context.Context, argv ...string) error
	// Output runs the command and returns its standard output.
	Output(ctx context.Context, argv ...string) ([]byte, error)
}

// InputRunner is a Runner that can also feed a command's standard input.
type InputRunner interface {
	Runner
	// RunInput runs the command with stdin attached to in and returns stdout.
	RunInput(ctx context.Context, in io.Reader, argv ...string) ([]byte, error)
}

// EnvRunner is a Runner that can also give its commands more environment.
type EnvRunner interface {
	Runner
	// WithEnv returns a Runner whose commands also get env (KEY=VALUE).
	WithEnv(env ...string) Runner
}

// CommandError reports a command that could not be started or exited non-zero.
// Its message carries the argv and the command's standard error, so a user
// reading it knows exactly what ran and what it said.
type CommandError struct {
	Argv     []string
	ExitCode int // -1 when the command did not start or was killed
	Stderr   string
	Err      error
}

func (e *CommandError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "running %q: %v", strings.Join(e.Argv, " "), e.Err)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		if len(s) > 2000 {
			s = s[len(s)-2000:]
		}
		b.WriteString(": ")
		b.WriteString(s)
	}
	return b.String()
}

func (e *CommandError) Unwrap() error { return e.Err }

// IsNotFound reports whether err says the program itself was not found.
func IsNotFound(err error) bool {
	return errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist)
}

// Exec is the real Runner. It sets LC_ALL=C so that tool output parsed by
// banger is stable, and prefixes `sudo -n` when Sudo is set and the current
// process is not already root.
type Exec struct {
	// Sudo runs commands through `sudo -n` when the caller is not root.
	Sudo bool
	// Env is added to the inherited environment (after LC_ALL=C).
	Env []string
	// Log, when set, also receives each command line and everything the
	// command writes on stdout and stderr (a build log).
	Log io.Writer
}

// Privileged returns a Runner for commands that need root: direct when the
// caller is root, `sudo -n` otherwise.
func Privileged() Exec { return Exec{Sudo: true} }

// Plain returns a Runner that never elevates.
func Plain() Exec { return Exec{} }

// Argv returns the argv that will actually be executed for argv, with the
// sudo prefix applied when needed.
func (e Exec) Argv(argv []string) []string {
	if e.Sudo && os.Geteuid() != 0 {
		return append([]string{"sudo", "-n", "--"}, argv...)
	}
	return argv
}

// WithEnv implements EnvRunner.
func (e Exec) WithEnv(env ...string) Runner {
	e.Env = append(append([]string(nil), e.Env...), env...)
	return e
}

// Run implements Runner.
func (e Exec) Run(ctx context.Context, argv ...string) error {
	_, err := e.RunInput(ctx, nil, argv...)
	return err
}

// Output implements Runner.
func (e Exec) Output(ctx context.Context, argv ...string) ([]byte, error) {
	return e.RunInput(ctx, nil, argv...)
}

// RunInput implements InputRunner.
func (e Exec) RunInput(ctx context.Context, in io.Reader, argv ...string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, errors.New("running command: empty argv")
	}
	full := e.Argv(argv)
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	// The command leads its own process group, so that a cancelled context
	// ends its children too (mmdebstrap's apt, a shell's pipeline) instead
	// of leaving them holding the output pipes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(append(os.Environ(), "LC_ALL=C"), e.Env...)
	cmd.Stdin = in
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if e.Log != nil {
		fmt.Fprintf(e.Log, "$ %s\n", strings.Join(full, " "))
		cmd.Stdout = io.MultiWriter(&stdout, e.Log)
		cmd.Stderr = io.MultiWriter(&stderr, e.Log)
	}
	if err := cmd.Run(); err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return stdout.Bytes(), &CommandError{Argv: full, ExitCode: code, Stderr: stderr.String(), Err: err}
	}
	return stdout.Bytes(), nil
}

// LookPath reports the absolute path of a program, searching PATH plus the
// sbin directories that a non-root user's PATH often lacks.
func LookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if !strings.Contains(name, "/") {
		for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
			p := dir + "/" + name
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("finding %s: %w", name, exec.ErrNotFound)
}

// Lines splits command output into trimmed, non-empty lines.
func Lines(out []byte) []string {
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}
