package guest

import (
	"errors"
	"fmt"
	"strings"
)

// ExecRequest is one command to run in the guest with its argv intact.
type ExecRequest struct {
	// Argv is the command and its arguments. Argv[0] is looked up in the
	// guest's PATH; shell builtins and aliases are never involved. Required.
	Argv []string
	// Env adds KEY=VALUE variables to the command's environment. Keys must
	// be shell names ([A-Za-z_][A-Za-z0-9_]*).
	Env []string
	// Dir is the working directory; the user's home when empty (or / when
	// that home does not exist). A directory that does not exist makes the
	// command exit 126 with a message on stderr, as docker exec does.
	Dir string
	// User runs the command as this guest user (through util-linux's
	// runuser, which sets HOME, SHELL, USER and LOGNAME for that user);
	// root, the user banger logs in as, when empty.
	User string
	// TTY gives the command a pseudo-terminal; its stdout and stderr then
	// both arrive on stdout, as with ssh -t.
	TTY bool
	// Term is TERM for the TTY; "xterm-256color" when empty.
	Term string
	// Size is the TTY's initial window size; 24x80 when zero.
	Size WindowSize
}

// WindowSize is a terminal's size in character cells.
type WindowSize struct {
	Rows, Cols int
}

// ExitCantRun is the status a command gets when banger could not start it
// in the requested working directory (as docker exec's 126).
const ExitCantRun = 126

// asUserScript runs as the target user under runuser. Its positional
// parameters are the working directory, KEY=VALUE pairs, "--" and then the
// argv; the argv is never re-parsed by a shell.
const asUserScript = `d=$1; shift
while [ $# -gt 0 ] && [ "$1" != -- ]; do export "$1"; shift; done
shift
if [ -n "$d" ]; then
	cd -- "$d" 2>/dev/null || { printf 'banger: cannot change to working directory %s (no such directory, or no permission)\n' "$d" >&2; exit 126; }
else
	cd -- "$HOME" 2>/dev/null || cd /
fi
exec "$@"`

// Line is the command line sent to the guest's login shell (SSH's exec
// request carries one string). Every argument is single-quoted for a POSIX
// shell, so spaces, quotes, $, *, newlines, empty strings and bytes that are
// not UTF-8 arrive unchanged; the command is exec'd, so the process the
// guest's sshd signals and reports on is the command itself.
func (r ExecRequest) Line() (string, error) {
	if err := r.validate(); err != nil {
		return "", err
	}
	var b strings.Builder
	if r.User != "" {
		b.WriteString("exec runuser -u ")
		b.WriteString(Quote(r.User))
		b.WriteString(" -- /bin/sh -c ")
		b.WriteString(Quote(asUserScript))
		b.WriteString(" banger-exec ")
		b.WriteString(Quote(r.Dir))
		for _, kv := range r.Env {
			b.WriteByte(' ')
			b.WriteString(Quote(kv))
		}
		b.WriteString(" --")
		for _, a := range r.Argv {
			b.WriteByte(' ')
			b.WriteString(Quote(a))
		}
		return b.String(), nil
	}
	if len(r.Env) > 0 {
		b.WriteString("export")
		for _, kv := range r.Env {
			b.WriteByte(' ')
			b.WriteString(Quote(kv))
		}
		b.WriteString("; ")
	}
	if r.Dir != "" {
		d := Quote(r.Dir)
		fmt.Fprintf(&b, "cd -- %s 2>/dev/null || { printf 'banger: cannot change to working directory %%s (no such directory, or no permission)\\n' %s >&2; exit %d; }; ", d, d, ExitCantRun)
	}
	b.WriteString("exec")
	for _, a := range r.Argv {
		b.WriteByte(' ')
		b.WriteString(Quote(a))
	}
	return b.String(), nil
}

func (r ExecRequest) validate() error {
	if len(r.Argv) == 0 {
		return errors.New("exec: no command given")
	}
	for _, a := range r.Argv {
		if strings.IndexByte(a, 0) >= 0 {
			return fmt.Errorf("exec: argument %q contains a NUL byte, which no program can receive", a)
		}
	}
	for _, kv := range r.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("exec: environment entry %q is not KEY=VALUE", kv)
		}
		if !isShellName(k) {
			return fmt.Errorf("exec: environment variable name %q is not valid (letters, digits and _, not starting with a digit)", k)
		}
		if strings.IndexByte(kv, 0) >= 0 {
			return fmt.Errorf("exec: environment entry %q contains a NUL byte", k)
		}
	}
	if strings.IndexByte(r.Dir, 0) >= 0 {
		return errors.New("exec: working directory contains a NUL byte")
	}
	if r.User != "" && (strings.IndexByte(r.User, 0) >= 0 || strings.HasPrefix(r.User, "-") || strings.ContainsAny(r.User, " \t\n:/")) {
		return fmt.Errorf("exec: %q is not a valid user name", r.User)
	}
	if r.Size.Rows < 0 || r.Size.Cols < 0 || r.Size.Rows > 0xffff || r.Size.Cols > 0xffff {
		return fmt.Errorf("exec: window size %dx%d is out of range", r.Size.Rows, r.Size.Cols)
	}
	return nil
}

func isShellName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range []byte(s) {
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
