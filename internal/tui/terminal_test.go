package tui

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"banger/internal/api"
	"banger/internal/daemon/daemontest"
	"banger/internal/vm"
)

// tmuxSession is a detached tmux server of the test's own (its own socket),
// killed at cleanup.
type tmuxSession struct {
	t    *testing.T
	sock string
}

func (s *tmuxSession) run(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", s.sock}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (s *tmuxSession) screen() string { return s.run("capture-pane", "-p", "-t", "tui") }

// waitScreen polls the pane until it matches re.
func (s *tmuxSession) waitScreen(re *regexp.Regexp) string {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		sc := s.screen()
		if re.MatchString(sc) {
			return sc
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the screen never matched %s:\n%s", re, sc)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// buildBanger compiles the real CLI binary into dir.
func buildBanger(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "banger")
	out, err := exec.Command("go", "build", "-o", bin, "banger/cmd/banger").CombinedOutput()
	if err != nil {
		t.Fatalf("building banger: %v\n%s", err, out)
	}
	return bin
}

// startTmux runs argv in a detached 120×40 tmux session named "tui" with
// the test's XDG directories, without color and without auto-starting a
// daemon.
func startTmux(t *testing.T, argv ...string) *tmuxSession {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	s := &tmuxSession{t: t, sock: filepath.Join(os.TempDir(), "bgtmux-"+hex.EncodeToString(b[:]))}
	t.Cleanup(func() {
		_ = exec.Command("tmux", "-S", s.sock, "kill-server").Run()
		os.Remove(s.sock)
	})
	args := []string{"-f", "/dev/null", "new-session", "-d", "-s", "tui", "-x", "120", "-y", "40"}
	for _, k := range []string{"XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR", "HOME", "PATH"} {
		args = append(args, "-e", k+"="+os.Getenv(k))
	}
	args = append(args, "-e", "NO_COLOR=1", "-e", "BANGER_NO_AUTOSTART=1", "-e", "TERM=xterm-256color")
	args = append(args, strings.Join(argv, " "))
	s.run(args...)
	s.run("set-option", "-t", "tui", "remain-on-exit", "on")
	return s
}

// TestRealTerminal runs the real `banger tui` binary in tmux against a
// daemon with fake layers served by this test: the table shows, a command
// runs at the exec prompt, a key stops a VM and the screen shows it, q
// quits with status 0.
func TestRealTerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the banger binary; skipped with -short")
	}
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed (Debian package tmux)")
	}
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	for _, n := range []string{"dev", "web"} {
		if _, _, err := inst.Client.CreateVM(context.Background(), api.CreateVMRequest{Name: n, Image: "base", CPUs: 1, MemoryMiB: 256, DiskBytes: vm.GiB, NoStart: n == "web"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	bin := buildBanger(t, t.TempDir())
	// The shell records banger's own exit status: tmux 3.3 reports a dead
	// pane's status only once it has reaped it, which lags under load.
	dir := t.TempDir()
	stderr, status := filepath.Join(dir, "stderr"), filepath.Join(dir, "status")
	s := startTmux(t, "sh", "-c", "'\"$0\" tui 2>\"$1\"; echo $? >\"$2\"'", bin, stderr, status)

	sc := s.waitScreen(regexp.MustCompile(`(?m)^▸dev\s+running\s+10\.213\.0\.\d+\s+dev\.vm`))
	for _, want := range []string{"NAME▲", "STATE", "ADDRESS", "web", "stopped", "? keys"} {
		if !strings.Contains(sc, want) {
			t.Errorf("screen lacks %q:\n%s", want, sc)
		}
	}
	if strings.Contains(sc, "\x1b") {
		t.Error("escape codes in the captured pane")
	}

	// A command at the exec prompt; the daemon's fake guest prints each
	// argument on a line.
	s.run("send-keys", "-t", "tui", "e")
	s.waitScreen(regexp.MustCompile(`exec in dev \$`))
	s.run("send-keys", "-t", "tui", "-l", "echo hi")
	s.run("send-keys", "-t", "tui", "Enter")
	s.waitScreen(regexp.MustCompile(`(?m)^sh\n-c\necho hi\nexit 0\nexec in dev \$`))
	s.run("send-keys", "-t", "tui", "Escape")
	s.waitScreen(regexp.MustCompile(`console`))

	s.run("send-keys", "-t", "tui", "x")
	s.waitScreen(regexp.MustCompile(`dev\s+stopped`))
	if v, err := inst.Client.VM(context.Background(), "dev"); err != nil || v.State != "stopped" {
		t.Errorf("daemon has dev %q (%v), want stopped", v.State, err)
	}

	s.run("send-keys", "-t", "tui", "q")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(status); err == nil && strings.HasSuffix(string(b), "\n") {
			if code := strings.TrimSpace(string(b)); code != "0" {
				errOut, _ := os.ReadFile(stderr)
				t.Fatalf("banger tui exited with status %s after q (above 128: killed by signal N-128)\nstderr: %s\nscreen:\n%s", code, errOut, s.screen())
			}
			break
		}
		if time.Now().After(deadline) {
			errOut, _ := os.ReadFile(stderr)
			t.Fatalf("banger tui did not exit within 20s after q\nstderr: %s\nscreen:\n%s", errOut, s.screen())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The alternate screen is gone: the table no longer shows.
	if sc := s.screen(); strings.Contains(sc, "NAME▲") {
		t.Errorf("the TUI's screen stayed after quitting:\n%s", sc)
	}
}
