package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"banger/internal/firecracker"
	"banger/internal/system"
)

// TestSuspendResumeKeepsTheGuest is issue 16's done-when for a real guest:
// pause and resume keep it running; a suspended VM holds no VMM, TAP or
// name, survives a daemon restart, and `vm start` resumes it with a
// process that was running still running, its memory-only and disk data
// intact, no reboot, and the host's time (with the daemon's SSH connection
// kept when the daemon did not restart); a daemon killed in the middle of
// a suspend leaves the host holding only what the database owns.
func TestSuspendResumeKeepsTheGuest(t *testing.T) {
	e := newGuestEnv(t)
	e.must("image", "bootstrap", "base")
	start := time.Now()
	e.must("vm", "create", "dev", "--cpus", "1", "--memory", "512M", "--disk", "256M", "--wait")
	t.Logf("create to ssh ready: %s", time.Since(start).Round(time.Millisecond))

	// A process that counts (its count file replaced whole, never seen
	// empty), data only in memory (tmpfs), data on disk, and
	// the kernel's boot id, which a reboot would change.
	pid := e.ssh("dev", "nohup sh -c 'i=0; while :; do i=$((i+1)); echo $i > /dev/shm/count.new; mv /dev/shm/count.new /dev/shm/count; sleep 0.2; done' >/dev/null 2>&1 & echo $!")
	if _, err := strconv.Atoi(pid); err != nil {
		t.Fatalf("background process pid = %q", pid)
	}
	e.ssh("dev", "echo only-in-memory > /dev/shm/marker")
	sum := e.ssh("dev", "head -c 4M /dev/urandom > /work/data && sync && sha256sum /work/data")
	bootID := e.ssh("dev", "cat /proc/sys/kernel/random/boot_id")
	// still checks that the guest is the same one, still running the
	// counter, with its data.
	still := func(t *testing.T, when string) {
		t.Helper()
		before := e.ssh("dev", "cat /dev/shm/count")
		got := e.ssh("dev", "kill -0 "+pid+" && echo alive; cat /dev/shm/marker; sha256sum /work/data; cat /proc/sys/kernel/random/boot_id; sleep 1; cat /dev/shm/count")
		lines := strings.Split(got, "\n")
		want := []string{"alive", "only-in-memory", sum, bootID}
		if len(lines) != 5 || strings.Join(lines[:4], "\n") != strings.Join(want, "\n") {
			t.Fatalf("%s: guest says %q, want %q and a count", when, lines, want)
		}
		b, _ := strconv.Atoi(before)
		a, _ := strconv.Atoi(lines[4])
		if b == 0 || a <= b {
			t.Errorf("%s: the counting process did not go on (%s, then %s)", when, before, lines[4])
		}
	}
	// clockNear checks that the guest's clock is within a second of the
	// host's (around the time the ssh round trip took).
	clockNear := func(t *testing.T, when string) {
		t.Helper()
		lo := time.Now().Add(-time.Second)
		guest, err := strconv.ParseFloat(e.ssh("dev", "date +%s.%N"), 64)
		hi := time.Now().Add(time.Second)
		g := time.Unix(0, int64(guest*1e9))
		if err != nil || g.Before(lo) || g.After(hi) {
			t.Errorf("%s: guest clock %s, host between %s and %s", when, g.UTC(), lo.UTC(), hi.UTC())
		}
	}
	dev := e.vm("dev")

	t.Run("pause and resume", func(t *testing.T) {
		e := e.with(t)
		e.must("vm", "pause", "dev")
		if v := e.vm("dev"); v.State != "paused" || v.PID != dev.PID {
			t.Fatalf("after pause: %s pid %d, want paused with pid %d", v.State, v.PID, dev.PID)
		}
		time.Sleep(2 * time.Second)
		e.must("vm", "resume", "dev")
		if v := e.vm("dev"); v.State != "running" {
			t.Fatalf("after resume: %s", v.State)
		}
		still(t, "after pause and resume")
	})

	// In one daemon's lifetime its SSH connection to the guest outlives a
	// suspend (parked, its guest end in the snapshot): the start needs no
	// handshake, and the guest still has that one connection from the
	// daemon, not a second.
	t.Run("suspend and start keep the daemon's connection", func(t *testing.T) {
		e := e.with(t)
		conns := func() string {
			return strings.TrimSpace(e.must("vm", "exec", "dev", "--", "ss", "-Htn", "state", "established", "sport", "=", ":22"))
		}
		before := conns()
		e.must("vm", "suspend", "dev")
		start := time.Now()
		e.must("vm", "start", "dev", "--wait")
		t.Logf("start of the suspended vm to ssh ready, same daemon: %s", time.Since(start).Round(time.Millisecond))
		clockNear(t, "after the start")
		if after := conns(); before == "" || after != before {
			t.Errorf("the guest's ssh connections before the suspend:\n%s\nafter the start:\n%s\nwant the daemon's one connection kept", before, after)
		}
		still(t, "after suspend and start")
	})

	t.Run("suspend, daemon restart, start", func(t *testing.T) {
		e := e.with(t)
		start := time.Now()
		e.must("vm", "suspend", "dev")
		t.Logf("suspend: %s", time.Since(start).Round(time.Millisecond))
		v := e.vm("dev")
		if v.State != "suspended" || v.PID != 0 || v.SavedBytes <= 0 {
			t.Fatalf("after suspend: %s pid %d saved %d bytes, want suspended, no pid, saved state", v.State, v.PID, v.SavedBytes)
		}
		if system.ProcessAlive(dev.PID, 0) {
			t.Errorf("the vmm (pid %d) still runs after suspend", dev.PID)
		}
		if ip, _ := e.resolve("dev"); ip != "" {
			t.Errorf("dev.vm resolves to %s while suspended", ip)
		}
		if links, _ := exec.Command("ip", "netns", "exec", e.netns, "ip", "-o", "link").CombinedOutput(); strings.Contains(string(links), dev.TAP) {
			t.Errorf("tap %s left while suspended", dev.TAP)
		}
		if out := e.must("vm", "show", "dev"); !strings.Contains(out, "saved in "+v.SavedMemory) {
			t.Errorf("vm show of a suspended vm lacks the memory file:\n%s", out)
		}
		// A daemon restart in between.
		killDaemon(t, e.status().PID)
		if v := e.vm("dev"); v.State != "suspended" {
			t.Fatalf("after a daemon restart: %s (%s)", v.State, v.Reason)
		}
		start = time.Now()
		e.must("vm", "start", "dev", "--wait")
		t.Logf("start of the suspended vm to ssh ready: %s", time.Since(start).Round(time.Millisecond))
		clockNear(t, "after the resume")
		if v := e.vm("dev"); v.State != "running" || v.SavedBytes != 0 {
			t.Errorf("after start: %s with %d saved bytes", v.State, v.SavedBytes)
		}
		for _, p := range []string{filepath.Join(filepath.Dir(v.SavedMemory), "suspend.state"), v.SavedMemory} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("%s left after the resume", p)
			}
		}
		still(t, "after suspend, daemon restart and start")
		if ip, _ := e.resolve("dev"); ip != dev.IP {
			t.Errorf("dev.vm resolves to %q after the resume, want %s", ip, dev.IP)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		e := e.with(t)
		e.must("vm", "create", "off", "--memory", "256M", "--disk", "64M", "--no-start")
		_, errOut, code := e.banger("vm", "suspend", "off")
		if code == 0 || !strings.Contains(errOut, "stopped") || !strings.Contains(errOut, "banger vm start off") {
			t.Errorf("suspend of a stopped vm: exit %d, %q; want an error with the start command", code, errOut)
		}
		_, errOut, code = e.banger("vm", "resume", "dev")
		if code != 0 {
			t.Errorf("resume of a running vm (nothing to do) failed: %s", errOut)
		}
		e.must("vm", "rm", "off")
	})

	t.Run("daemon kill -9 mid-suspend leaves only what the database owns", func(t *testing.T) {
		e := e.with(t)
		cur := e.vm("dev")
		mem := filepath.Join(filepath.Dir(cur.RootDisk), "suspend.mem")
		suspend := exec.Command("ip", "netns", "exec", e.netns, filepath.Join(e.bin, "banger"), "vm", "suspend", "dev")
		suspend.Env = append(cleanEnv(), e.vars...)
		daemonPID := e.status().PID
		if err := suspend.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill the daemon while the VMM writes the memory file.
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			if _, err := os.Stat(mem); err == nil {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		killDaemon(t, daemonPID)
		_ = suspend.Wait()
		v := e.vm("dev") // restarts the daemon, which reconciles
		t.Logf("after the kill: %s (%s)", v.State, v.Reason)
		saved := false
		if _, err := os.Stat(mem); err == nil {
			saved = true
		}
		switch v.State {
		case "paused", "running":
			if saved {
				t.Errorf("a %s vm keeps %s", v.State, mem)
			}
			if !system.ProcessAlive(v.PID, 0) {
				t.Errorf("a %s vm's vmm (pid %d) is gone", v.State, v.PID)
			}
			if v.State == "paused" {
				e.must("vm", "resume", "dev")
			}
		case "suspended":
			if !saved {
				t.Errorf("a suspended vm lacks %s", mem)
			}
			if system.ProcessAlive(cur.PID, 0) {
				t.Errorf("the vmm of a suspended vm (pid %d) still runs", cur.PID)
			}
			e.must("vm", "start", "dev", "--wait")
		default:
			t.Fatalf("after daemon kill -9 mid-suspend: %s %q", v.State, v.Reason)
		}
		still(t, "after a daemon kill -9 mid-suspend")
	})

	t.Run("a damaged saved state fails the start and is kept", func(t *testing.T) {
		e := e.with(t)
		e.must("vm", "suspend", "dev")
		mem := e.vm("dev").SavedMemory
		if err := os.Rename(mem, mem+".aside"); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(mem, make([]byte, 1<<20), 0o600); err != nil {
			t.Fatal(err)
		}
		_, errOut, code := e.banger("vm", "start", "dev", "--wait")
		if code == 0 || !strings.Contains(errOut, "restore") || !strings.Contains(errOut, "memory file") || !strings.Contains(errOut, "banger vm stop dev") {
			t.Errorf("start from a damaged memory file: exit %d, %q; want the restore step, the cause and the way on", code, errOut)
		}
		if v := e.vm("dev"); v.State != "suspended" || v.PID != 0 {
			t.Errorf("after the failed restore: %s pid %d, want suspended without a vmm", v.State, v.PID)
		}
		for sock := range servingUnder(e.run) {
			t.Errorf("a vmm still serves %s after the failed restore", sock)
		}
		if err := os.Rename(mem+".aside", mem); err != nil {
			t.Fatal(err)
		}
		e.must("vm", "start", "dev", "--wait")
		still(t, "after a failed restore and a retry")
	})

	t.Run("rm leaves nothing", func(t *testing.T) {
		e := e.with(t)
		e.must("vm", "suspend", "dev")
		dir := filepath.Dir(e.vm("dev").SavedMemory)
		e.must("vm", "rm", "dev")
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("%s survived rm of a suspended vm", dir)
		}
		for sock := range servingUnder(e.run) {
			t.Errorf("a vmm still serves %s", sock)
		}
	})
}

// servingUnder lists the API sockets below dir that a VMM process serves.
func servingUnder(dir string) map[string]bool {
	out := map[string]bool{}
	for sock := range firecracker.ServingSockets() {
		if strings.HasPrefix(sock, dir) {
			out[sock] = true
		}
	}
	return out
}

// killDaemon kills bangerd with SIGKILL and waits until it is gone, so
// that the next CLI call starts a new one.
func killDaemon(t testing.TB, pid int) {
	t.Helper()
	if err := system.Signal(pid, 0, 9); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 500 && system.ProcessAlive(pid, 0); i++ {
		time.Sleep(10 * time.Millisecond)
	}
}
