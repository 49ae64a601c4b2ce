package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"banger/internal/api"
	"banger/internal/testutil"
)

// env is one isolated banger installation: its binaries and XDG directories.
type env struct {
	t    testing.TB
	bin  string
	home string
	run  string
	vars []string
	// netns, when set, is the network namespace every banger command (and
	// so the daemon and its VMMs) runs in.
	netns      string
	extraNetns *[]string // shared by copies made with with()
	// user, when set, is the ordinary user every banger command runs as
	// (through setpriv, so the daemon and its VMMs run as that user too).
	user *osUser
}

func newEnv(t testing.TB) *env {
	t.Helper()
	bin := testutil.Binaries(t)
	home := t.TempDir()
	var b [4]byte
	_, _ = rand.Read(b[:])
	run := filepath.Join(os.TempDir(), "bge-"+hex.EncodeToString(b[:]))
	if err := os.MkdirAll(run, 0o700); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, bin: bin, home: home, run: run, extraNetns: new([]string)}
	e.vars = []string{
		"XDG_CONFIG_HOME=" + filepath.Join(home, "config"),
		"XDG_STATE_HOME=" + filepath.Join(home, "state"),
		"XDG_DATA_HOME=" + filepath.Join(home, "data"),
		"XDG_CACHE_HOME=" + filepath.Join(home, "cache"),
		"XDG_RUNTIME_DIR=" + run,
		"BANGER_DAEMON=" + filepath.Join(bin, "bangerd"),
		// A free port, so that test daemons never meet each other or
		// the developer's own bangerd on 127.0.0.1:42069; dnsAddr says
		// which one.
		"BANGER_DNS_LISTEN=127.0.0.1:0",
		// A bridge of its own: a daemon sweeps the banger TAPs on its
		// bridge that its database does not own, and in the host's
		// namespace those on banger0 are the developer's VMs'.
		"BANGER_BRIDGE=bgebr" + hex.EncodeToString(b[:]),
		"NO_COLOR=1",
		// `image bootstrap` makes the image testutil.GuestImage cached.
		"BANGER_BOOTSTRAP_KERNEL=" + testutil.GuestKernel(),
	}
	t.Cleanup(func() {
		e.stopDaemon()
		os.RemoveAll(run)
	})
	return e
}

// with returns the env reporting to t, for use inside a subtest (failing
// the parent test from a subtest is not allowed).
func (e *env) with(t testing.TB) *env {
	c := *e
	c.t = t
	return &c
}

func (e *env) socket() string { return filepath.Join(e.run, "banger", "bangerd.sock") }

func (e *env) client() *api.Client { return api.NewClient(e.socket()) }

// cliTimeout bounds one CLI run; bangerWithin takes another bound for the
// few that take longer (an image build with the default manifest).
const cliTimeout = 5 * time.Minute

// banger runs the CLI and returns stdout, stderr and the exit code.
func (e *env) banger(args ...string) (string, string, int) {
	e.t.Helper()
	return e.bangerWithin(cliTimeout, args...)
}

// bangerWithin is banger with a timeout of its own.
func (e *env) bangerWithin(timeout time.Duration, args ...string) (string, string, int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	argv := append([]string{filepath.Join(e.bin, "banger")}, args...)
	if u := e.user; u != nil {
		argv = append([]string{"setpriv", "--reuid=" + u.name, "--regid=" + strconv.Itoa(u.gid), "--init-groups", "--"}, argv...)
	}
	if e.netns != "" {
		argv = append([]string{"ip", "netns", "exec", e.netns}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(cleanEnv(), e.vars...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return out.String(), errb.String(), code
}

// must runs the CLI and fails the test unless it succeeds.
func (e *env) must(args ...string) string {
	e.t.Helper()
	return e.mustWithin(cliTimeout, args...)
}

// mustWithin is must with a timeout of its own.
func (e *env) mustWithin(timeout time.Duration, args ...string) string {
	e.t.Helper()
	out, errOut, code := e.bangerWithin(timeout, args...)
	if code != 0 {
		e.t.Fatalf("banger %s: exit %d\nstdout: %s\nstderr: %s\ndaemon log tail:\n%s", strings.Join(args, " "), code, out, errOut, e.daemonLogTail())
	}
	return out
}

func (e *env) status() api.Status {
	e.t.Helper()
	var st api.Status
	if err := json.Unmarshal([]byte(e.must("daemon", "status", "-o", "json")), &st); err != nil {
		e.t.Fatal(err)
	}
	return st
}

// dnsAddr is the daemon's loopback DNS listener, as `banger daemon status`
// reports it.
func (e *env) dnsAddr() string {
	e.t.Helper()
	st := e.status()
	for _, l := range st.Listeners {
		ap, err := netip.ParseAddrPort(l.Address)
		if l.Name == "dns" && err == nil && ap.Addr().IsLoopback() {
			if ap.Port() == 0 {
				e.t.Fatalf("daemon status reports the dns listener as %s, not the port it bound", l.Address)
			}
			return l.Address
		}
	}
	e.t.Fatalf("daemon status lists no loopback dns listener: %+v", st.Listeners)
	return ""
}

// daemonLogTail is the end of the daemon's log and of every VM's console,
// for a failure message: what the daemon did and how far each guest got.
func (e *env) daemonLogTail() string {
	out := []string{lastLines(filepath.Join(e.home, "state", "banger", "bangerd.log"), 30)}
	consoles, _ := filepath.Glob(filepath.Join(e.home, "*", "banger", "vms", "*", "console.log"))
	more, _ := filepath.Glob(filepath.Join(e.home, "*", "state", "banger", "vms", "*", "console.log"))
	for _, c := range append(consoles, more...) {
		out = append(out, "console "+c+":\n"+lastLines(c, 12))
	}
	return strings.Join(out, "\n")
}

// lastLines is the last n lines of a file, "" when it cannot be read.
func lastLines(path string, n int) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (e *env) stopDaemon() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := e.client()
	if err := c.Shutdown(ctx); err != nil {
		return
	}
	for ctx.Err() == nil {
		if _, err := c.Status(ctx); api.IsDialError(err) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cleanEnv drops the caller's banger and XDG settings.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "XDG_") || strings.HasPrefix(kv, "BANGER_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
