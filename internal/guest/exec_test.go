package guest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// shellEnv is a fake guest that runs commands through a real shell, and a
// client connected to it.
func shellEnv(t *testing.T, sh string) (*fakeGuest, *Client) {
	t.Helper()
	if _, err := os.Stat(sh); err != nil {
		t.Skipf("%s is not installed", sh)
	}
	e := newTestEnv(t)
	bin := t.TempDir()
	// runuser stands in for util-linux's: it checks the argv grammar
	// Line uses, records the user and runs the command.
	writeScript(t, bin, "runuser", `[ "$1" = -u ] && [ "$3" = -- ] || { echo "runuser: bad usage: $*" >&2; exit 2; }
RUNUSER_AS=$2; export RUNUSER_AS
shift 3
exec "$@"
`)
	e.guest.useShell(sh, bin)
	return e.guest, dial(t, e)
}

func execOut(t *testing.T, c *Client, req ExecRequest, stdin io.Reader) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code, err := c.Exec(ctx, req, stdin, &out, &errb, nil)
	if err != nil {
		t.Fatalf("exec %q: %v", req.Argv, err)
	}
	return code, out.String(), errb.String()
}

// hostileArgs are arguments a shell would otherwise split, expand or eat.
var hostileArgs = []string{
	"a b", "it's", `"double"`, "$HOME", "${PATH}", "*", "?", "[a]", "~", "new\nline", "",
	"\xff\xfe not utf-8", "-n", "--", "a=b", "`id`", "$(id)", `back\slash`, ";", "&&", "|", ">x", "\t", " ", "'", `'\''`, "!",
}

// argvPrinter prints each of its arguments base64-encoded on its own line.
var argvPrinter = []string{"sh", "-c", `for a in "$@"; do printf '%s' "$a" | base64 -w0; echo; done`, "printer"}

func decodeLines(t *testing.T, out string) []string {
	t.Helper()
	var got []string
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		b, err := base64.StdEncoding.DecodeString(l)
		if err != nil {
			t.Fatalf("decoding %q: %v", l, err)
		}
		got = append(got, string(b))
	}
	return got
}

func TestExecKeepsEveryArgumentIntact(t *testing.T) {
	for _, sh := range []string{"/bin/sh", "/bin/bash"} {
		t.Run(filepath.Base(sh), func(t *testing.T) {
			_, c := shellEnv(t, sh)
			argv := append(slices.Clone(argvPrinter), hostileArgs...)
			code, out, stderr := execOut(t, c, ExecRequest{Argv: argv}, nil)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if diff := cmp.Diff(hostileArgs, decodeLines(t, out)); diff != "" {
				t.Errorf("arguments as received (-sent +got):\n%s", diff)
			}
		})
	}
}

func TestExecStatusStdoutStderr(t *testing.T) {
	_, c := shellEnv(t, "/bin/sh")
	code, out, stderr := execOut(t, c, ExecRequest{Argv: []string{"sh", "-c", "echo out; echo err >&2; exit 7"}}, nil)
	if code != 7 || out != "out\n" || stderr != "err\n" {
		t.Errorf("got exit %d, stdout %q, stderr %q; want 7, \"out\\n\", \"err\\n\"", code, out, stderr)
	}
	code, _, _ = execOut(t, c, ExecRequest{Argv: []string{"sh", "-c", "kill -KILL $$"}}, nil)
	if code != 128+9 {
		t.Errorf("killed by SIGKILL: exit %d, want 137", code)
	}
	code, _, stderr = execOut(t, c, ExecRequest{Argv: []string{"no-such-command-here"}}, nil)
	if code != 127 || !strings.Contains(stderr, "not found") {
		t.Errorf("missing command: exit %d, stderr %q; want 127, not found", code, stderr)
	}
	// A shell builtin is not what runs: exec looks argv[0] up in PATH.
	code, _, _ = execOut(t, c, ExecRequest{Argv: []string{"cd", "/"}}, nil)
	if code != 127 {
		t.Errorf("builtin cd: exit %d, want 127 (not found in PATH)", code)
	}
}

func TestExecStdinIsByteExact(t *testing.T) {
	_, c := shellEnv(t, "/bin/sh")
	data := make([]byte, 10<<20)
	rand.Read(data)
	code, out, stderr := execOut(t, c, ExecRequest{Argv: []string{"cat"}}, bytes.NewReader(data))
	if code != 0 {
		t.Fatalf("cat: exit %d, %s", code, stderr)
	}
	if !bytes.Equal([]byte(out), data) {
		t.Errorf("cat returned %d bytes, not the %d sent", len(out), len(data))
	}
	// EOF reaches the command: wc ends and counts.
	code, out, _ = execOut(t, c, ExecRequest{Argv: []string{"wc", "-c"}}, strings.NewReader("12345"))
	if code != 0 || strings.TrimSpace(out) != "5" {
		t.Errorf("wc -c = %d %q", code, out)
	}
}

// blockingReader never returns, like a terminal nobody types into.
type blockingReader struct{ stop chan struct{} }

func (b blockingReader) Read([]byte) (int, error) { <-b.stop; return 0, io.EOF }

func TestExecDoesNotWaitForStdin(t *testing.T) {
	_, c := shellEnv(t, "/bin/sh")
	stdin := blockingReader{make(chan struct{})}
	defer close(stdin.stop)
	done := make(chan int, 1)
	go func() { code, _, _ := execOut(t, c, ExecRequest{Argv: []string{"true"}}, stdin); done <- code }()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("true: exit %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("exec of true waited for stdin to end")
	}
}

func TestExecEnvDirUser(t *testing.T) {
	g, c := shellEnv(t, "/bin/sh")
	env := []string{"A=x y", "B=$HOME'*", "EMPTY="}
	show := []string{"sh", "-c", `printf '%s|%s|%s|%s|%s' "$A" "$B" "${EMPTY-unset}" "$(pwd)" "${RUNUSER_AS-root}"`}
	dir := filepath.Join(g.home, "a dir with 'quotes' and $x")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		req  ExecRequest
		want string
	}{
		{"env", ExecRequest{Env: env}, "x y|$HOME'*||" + g.home + "|root"},
		{"dir", ExecRequest{Dir: dir}, "||unset|" + dir + "|root"},
		{"user", ExecRequest{User: "alice", Env: env}, "x y|$HOME'*||" + g.home + "|alice"},
		{"user and dir", ExecRequest{User: "alice", Dir: dir}, "||unset|" + dir + "|alice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Argv = show
			code, out, stderr := execOut(t, c, tc.req, nil)
			if code != 0 || out != tc.want {
				t.Errorf("exit %d, stdout %q (stderr %q); want %q", code, out, stderr, tc.want)
			}
		})
	}
	for _, user := range []string{"", "alice"} {
		code, out, stderr := execOut(t, c, ExecRequest{Argv: []string{"pwd"}, Dir: "/no/such dir", User: user}, nil)
		if code != ExitCantRun || out != "" || !strings.Contains(stderr, "cannot change to working directory /no/such dir") {
			t.Errorf("user %q, missing dir: exit %d, stdout %q, stderr %q", user, code, out, stderr)
		}
	}
}

func TestExecLineRejectsWhatCannotBeSent(t *testing.T) {
	for _, req := range []ExecRequest{
		{},
		{Argv: []string{"a\x00b"}},
		{Argv: []string{"true"}, Env: []string{"NOEQUALS"}},
		{Argv: []string{"true"}, Env: []string{"1X=y"}},
		{Argv: []string{"true"}, Env: []string{"A-B=y"}},
		{Argv: []string{"true"}, User: "-r"},
		{Argv: []string{"true"}, User: "a b"},
		{Argv: []string{"true"}, Size: WindowSize{Rows: 70000}},
	} {
		if line, err := req.Line(); err == nil {
			t.Errorf("%+v: line %q, want an error", req, line)
		}
	}
}

// lineWatcher passes writes through and closes seen when want appears.
type lineWatcher struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *lineWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func TestExecTTYSizeTermAndResize(t *testing.T) {
	requirePty(t)
	_, c := shellEnv(t, "/bin/sh")
	out := &lineWatcher{want: "ready", seen: make(chan struct{})}
	resize := make(chan WindowSize, 1)
	script := `test -t 0 && test -t 1 && echo tty; echo "term=$TERM"; echo "size=$(stty size)"
trap 'echo "resized=$(stty size)"; exit 3' WINCH
echo ready; while :; do sleep 0.05; done`
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	var code int
	go func() {
		var err error
		code, err = c.Exec(ctx, ExecRequest{Argv: []string{"sh", "-c", script}, TTY: true, Size: WindowSize{Rows: 33, Cols: 101}}, nil, out, nil, resize)
		done <- err
	}()
	select {
	case <-out.seen:
	case err := <-done:
		t.Fatalf("ended before ready: %v, output %q", err, out.String())
	}
	resize <- WindowSize{Rows: 50, Cols: 132}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := strings.ReplaceAll(out.String(), "\r\n", "\n")
	for _, want := range []string{"tty\n", "term=xterm-256color\n", "size=33 101\n", "resized=50 132\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("terminal output %q lacks %q", got, want)
		}
	}
	if code != 3 {
		t.Errorf("exit %d, want 3", code)
	}
}

func TestExecCancelSignalsThenKills(t *testing.T) {
	g, c := shellEnv(t, "/bin/sh")
	for _, tc := range []struct {
		name, script string
		want         []string
		min          time.Duration
	}{
		{"term", "exec sleep 60", []string{"TERM"}, 0},
		{"term ignored", "trap '' TERM; echo ready; exec sleep 60", []string{"TERM", "KILL"}, killGrace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g.mu.Lock()
			g.signals = nil
			g.mu.Unlock()
			ctx, cancel := context.WithCancel(context.Background())
			p, err := c.Start(ctx, ExecRequest{Argv: []string{"sh", "-c", tc.script}}, nil, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond) // let the trap be set
			start := time.Now()
			cancel()
			code, err := p.Wait()
			took := time.Since(start)
			if code != -1 || !errors.Is(err, context.Canceled) {
				t.Errorf("Wait = %d, %v; want -1, context canceled", code, err)
			}
			if took < tc.min || took > tc.min+3*time.Second {
				t.Errorf("took %s to end, want about %s", took, tc.min)
			}
			g.mu.Lock()
			defer g.mu.Unlock()
			if !slices.Equal(g.signals, tc.want) {
				t.Errorf("signals sent %q, want %q", g.signals, tc.want)
			}
		})
	}
}

func TestExecSignal(t *testing.T) {
	_, c := shellEnv(t, "/bin/sh")
	out := &lineWatcher{want: "ready", seen: make(chan struct{})}
	p, err := c.Start(context.Background(), ExecRequest{Argv: []string{"sh", "-c", `trap 'echo got-int; exit 5' INT; echo ready; while :; do sleep 0.05; done`}}, nil, out, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-out.seen
	if err := p.Signal("sigint"); err != nil {
		t.Fatal(err)
	}
	code, err := p.Wait()
	if err != nil || code != 5 || !strings.Contains(out.String(), "got-int") {
		t.Errorf("after SIGINT: %d, %v, output %q", code, err, out.String())
	}
	if err := p.Signal("WINCH"); err == nil {
		t.Error("Signal(WINCH) succeeded; sshd cannot deliver it")
	}
}

func TestManyConcurrentExecsOnOneClient(t *testing.T) {
	_, c := shellEnv(t, "/bin/sh")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := strings.Repeat(fmt.Sprintf("session %d\n", i), 10000)
			var out bytes.Buffer
			code, err := c.Exec(context.Background(), ExecRequest{Argv: []string{"sh", "-c", "cat; exit $0", fmt.Sprint(i)}}, strings.NewReader(in), &out, nil, nil)
			if err != nil || code != i || out.String() != in {
				errs <- fmt.Errorf("session %d: exit %d, %d bytes back, %v", i, code, out.Len(), err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestLineRunsInBashAndDash checks the quoting of the whole line, not just
// the argv, against both shells a guest may log root in with.
func TestLineRunsInBashAndDash(t *testing.T) {
	req := ExecRequest{Argv: argvPrinter, Env: []string{"K=v'v"}, Dir: "/"}
	req.Argv = append(slices.Clone(req.Argv), hostileArgs...)
	line, err := req.Line()
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range []string{"/bin/sh", "/bin/bash"} {
		out, err := exec.Command(sh, "-c", line).Output()
		if err != nil {
			t.Fatalf("%s: %v", sh, err)
		}
		if diff := cmp.Diff(hostileArgs, decodeLines(t, string(out))); diff != "" {
			t.Errorf("%s (-sent +got):\n%s", sh, diff)
		}
	}
}

func TestPingAndWait(t *testing.T) {
	e := newTestEnv(t)
	c := dial(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping on a live connection: %v", err)
	}
	closed := make(chan struct{})
	go func() { c.Wait(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Wait returned on a live connection")
	case <-time.After(50 * time.Millisecond):
	}
	c.Close()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after Close")
	}
	if err := c.Ping(ctx); err == nil {
		t.Error("Ping on a closed connection succeeded")
	}
}

// TestLineWithRealRunuser runs a User line through the host's util-linux
// runuser, as root, for the user nobody (whose home does not exist).
func TestLineWithRealRunuser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runuser needs root")
	}
	if _, err := exec.LookPath("runuser"); err != nil {
		t.Skip("runuser (util-linux) is not installed")
	}
	show := []string{"sh", "-c", `printf '%s|%s|%s|%s' "$(id -un)" "$HOME" "$(pwd)" "$K"`}
	for _, tc := range []struct {
		req  ExecRequest
		want string
		code int
	}{
		{ExecRequest{User: "nobody", Env: []string{"K=it's"}}, "nobody|/nonexistent|/|it's", 0},
		{ExecRequest{User: "nobody", Dir: "/tmp"}, "nobody|/nonexistent|/tmp|", 0},
		{ExecRequest{User: "nobody", Dir: "/no/such"}, "", ExitCantRun},
		{ExecRequest{User: "nobody", Env: []string{"HOME=/tmp"}}, "nobody|/tmp|/tmp|", 0},
	} {
		tc.req.Argv = show
		line, err := tc.req.Line()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("/bin/bash", "-c", line)
		cmd.Dir = "/"
		out, err := cmd.Output()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if string(out) != tc.want || code != tc.code {
			t.Errorf("%+v: %q exit %d, want %q exit %d", tc.req, out, code, tc.want, tc.code)
		}
	}
}
