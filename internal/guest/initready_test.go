package guest

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runInitReady runs InitReadyScript with PID 1's executable at the
// symlink exe and systemd's private socket at sock, its loop cut to
// rounds of 50 ms; during runs while it waits.
func runInitReady(t *testing.T, exe, sock string, rounds string, during func()) (time.Duration, string, error) {
	t.Helper()
	script := strings.NewReplacer("/proc/1/exe", exe, "/run/systemd/private", sock, "1200", rounds).Replace(InitReadyScript)
	cmd := exec.Command("sh", "-c", script)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if during != nil {
		during()
	}
	err := cmd.Wait()
	return time.Since(start), stderr.String(), err
}

func TestInitReadyScript(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "exe")
	sock := filepath.Join(dir, "private")
	link := func(target string) {
		os.Remove(exe)
		if err := os.Symlink(target, exe); err != nil {
			t.Fatal(err)
		}
	}

	// Another init: ready at once.
	link("/sbin/init")
	if _, _, err := runInitReady(t, exe, sock, "1200", nil); err != nil {
		t.Errorf("with /sbin/init as PID 1: %v", err)
	}

	// The initramfs hands over to systemd, which opens its socket later:
	// the script returns only then.
	link("/bin/busybox")
	d, stderr, err := runInitReady(t, exe, sock, "1200", func() {
		time.Sleep(300 * time.Millisecond)
		link("/usr/lib/systemd/systemd")
		time.Sleep(300 * time.Millisecond)
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
	})
	if err != nil || d < 600*time.Millisecond {
		t.Errorf("handing over to systemd: returned after %v with %v (%s), want success after its socket appeared", d, err, stderr)
	}

	// systemd that never opens its socket: the script gives up and says so.
	os.Remove(sock)
	link("/usr/lib/systemd/systemd")
	_, stderr, err = runInitReady(t, exe, filepath.Join(dir, "never"), "4", nil)
	if err == nil || !strings.Contains(stderr, "did not accept commands") || !strings.Contains(stderr, "/usr/lib/systemd/systemd") {
		t.Errorf("systemd without its socket: %v, stderr %q; want a failure naming PID 1", err, stderr)
	}
}
