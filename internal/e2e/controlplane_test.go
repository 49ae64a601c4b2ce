package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"banger/internal/system"
	"banger/internal/testutil"
)

func TestCLIStartsDaemonInItsOwnSession(t *testing.T) {
	e := newEnv(t)
	if out := e.must("vm", "list"); !strings.HasPrefix(out, "NAME") {
		t.Errorf("vm list output = %q", out)
	}
	st := e.status()
	if st.PID == 0 || st.Socket != e.socket() {
		t.Fatalf("status = %+v", st)
	}
	sid, err := unix.Getsid(st.PID)
	if err != nil || sid != st.PID {
		t.Errorf("bangerd (pid %d) session = %d, %v; want its own session", st.PID, sid, err)
	}
	for path, want := range map[string]os.FileMode{filepath.Dir(e.socket()): 0o700, e.socket(): 0o600} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s mode = %v, %v; want %v", path, fi.Mode().Perm(), err, want)
		}
	}
	out := e.must("daemon", "stop")
	if !strings.Contains(out, "stopped") {
		t.Errorf("daemon stop output = %q", out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for system.ProcessAlive(st.PID, 0) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if system.ProcessAlive(st.PID, 0) {
		t.Errorf("bangerd pid %d still alive after stop", st.PID)
	}
}

func TestCLIRestartsRebuiltDaemon(t *testing.T) {
	e := newEnv(t)
	// Use a private copy of bangerd so that "rebuilding" it does not
	// disturb other tests.
	own := filepath.Join(t.TempDir(), "bangerd")
	data, err := os.ReadFile(filepath.Join(e.bin, "bangerd"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(own, data, 0o755); err != nil {
		t.Fatal(err)
	}
	e.vars = append(e.vars, "BANGER_DAEMON="+own)
	before := e.status()
	later := time.Now().Add(2 * time.Second)
	if err := os.Chtimes(own, later, later); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := e.banger("vm", "list")
	if code != 0 || !strings.Contains(errOut, "restarting bangerd") {
		t.Fatalf("vm list after rebuild: exit %d, stderr %q", code, errOut)
	}
	after := e.status()
	if after.PID == before.PID || after.BuildID == before.BuildID {
		t.Errorf("daemon not restarted: before %d/%s after %d/%s", before.PID, before.BuildID, after.PID, after.BuildID)
	}
	// No restart when nothing changed.
	if _, errOut, _ := e.banger("vm", "list"); strings.Contains(errOut, "restarting") {
		t.Errorf("restarted an up-to-date daemon: %q", errOut)
	}
}

func TestCorruptDatabaseIsExplainedAndKept(t *testing.T) {
	e := newEnv(t)
	db := filepath.Join(e.home, "state", "banger", "banger.db")
	if err := os.MkdirAll(filepath.Dir(db), 0o700); err != nil {
		t.Fatal(err)
	}
	junk := []byte(strings.Repeat("not a database ", 1000))
	if err := os.WriteFile(db, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := e.banger("vm", "list")
	if code == 0 || !strings.Contains(errOut, "corrupt") || !strings.Contains(errOut, "move the file aside") {
		t.Errorf("corrupt db: exit %d, stderr %q", code, errOut)
	}
	if got, _ := os.ReadFile(db); string(got) != string(junk) {
		t.Error("corrupt database was modified")
	}
}

func TestOtherUsersAreRefused(t *testing.T) {
	testutil.RequireRoot(t)
	e := newEnv(t)
	e.status()
	// Open the directory and socket to everyone so that only the peer
	// credential check stands between uid 65534 and the daemon.
	if err := os.Chmod(filepath.Dir(e.socket()), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(e.run), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(e.socket(), 0o666); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The test binary lives in a directory only root may enter; run a copy.
	dir, err := os.MkdirTemp("", "bge-peer-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "e2e.test")
	if err := os.WriteFile(exe, self, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, exe, "-test.run", "^TestPeerClientHelper$")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BANGER_E2E_PEER_SOCKET="+e.socket())
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("peer client: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "status 403") || !strings.Contains(string(out), "uid 65534 may not use this bangerd") {
		t.Errorf("other uid was not refused:\n%s", out)
	}
}

// TestPeerClientHelper is run by TestOtherUsersAreRefused as another user.
func TestPeerClientHelper(t *testing.T) {
	sock := os.Getenv("BANGER_E2E_PEER_SOCKET")
	if sock == "" {
		t.Skip("helper process for TestOtherUsersAreRefused")
	}
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Get("http://bangerd/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	t.Logf("status %d %s", resp.StatusCode, body)
	os.Stdout.WriteString("status " + strconv.Itoa(resp.StatusCode) + " " + string(body) + "\n")
}

// TestNoTerminalQueryAtStart: a banger command on a terminal writes no
// colour query to it (Bubble Tea's init used to ask every terminal for its
// background colour and wait up to 5 s for an answer that script(1), apt's
// pseudo-terminal or a serial console never gives).
func TestNoTerminalQueryAtStart(t *testing.T) {
	testutil.RequireTool(t, "script")
	e := newEnv(t)
	cmd := exec.Command("script", "-qec", filepath.Join(e.bin, "banger")+" --help", "/dev/null")
	cmd.Env = append(cleanEnv(), e.vars...)
	cmd.Env = append(cmd.Env, "TERM=xterm-256color")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("banger --help on a terminal: %v\n%q", err, out)
	}
	if strings.Contains(string(out), "\x1b]11;?") || strings.Contains(string(out), "\x1b]10;?") {
		t.Errorf("banger --help queried the terminal: %q", out)
	}
	if !strings.Contains(string(out), "Usage:") {
		t.Errorf("banger --help on a terminal printed %q", out)
	}
}
