package e2e

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"banger/internal/system"
)

// TestFullDisk puts banger's data and state (the database too) on a small
// file system and fills it: every operation that writes fails with a
// message that names the full disk, leaves nothing behind (system check
// is clean), the database still answers and a running VM keeps running;
// once space is freed the same operations work.
func TestFullDisk(t *testing.T) {
	e := newGuestEnv(t)
	dir := e.loopData(t, "ext4", "900M")
	e.vars = append(e.vars, "XDG_STATE_HOME="+filepath.Join(dir, "state"))
	e.must("image", "bootstrap", "base")
	e.must("vm", "create", "keep", "--no-wait", "--memory", "256M", "--disk", "64M")
	keep := e.vm("keep")

	// Fill what is left, root's reserve included (bangerd runs as root).
	filler := filepath.Join(dir, "filler")
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bfree) * st.Bsize
	if out, err := exec.Command("fallocate", "-l", itoa(free), filler).CombinedOutput(); err != nil {
		t.Logf("fallocate %d: %v: %s (filling the rest with dd)", free, err, out)
	}
	_ = exec.Command("dd", "if=/dev/zero", "of="+filepath.Join(dir, "filler2"), "bs=64k").Run()
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	t.Logf("free after filling: %d bytes", int64(st.Bfree)*st.Bsize)

	for _, args := range [][]string{
		{"vm", "create", "more", "--no-start", "--memory", "256M", "--disk", "64M"},
		{"image", "bootstrap", "again"},
	} {
		out, errOut, code := e.banger(args...)
		if code == 0 {
			t.Errorf("banger %s succeeded on a full disk:\n%s", strings.Join(args, " "), out)
			continue
		}
		if !strings.Contains(errOut, "no space left on device") && !strings.Contains(errOut, "disk is full") || !strings.Contains(errOut, "full") {
			t.Errorf("banger %s on a full disk: exit %d, the message does not name the full disk:\n%s", strings.Join(args, " "), code, errOut)
		}
	}
	// The database answers, nothing was left, the running VM runs.
	if out := e.must("vm", "list"); !strings.Contains(out, "keep") || strings.Contains(out, "more") {
		t.Errorf("vm list on a full disk:\n%s", out)
	}
	if out, errOut, code := e.banger("system", "check"); code != 0 {
		t.Errorf("system check after failures on a full disk: exit %d\n%s%s", code, out, errOut)
	}
	if v := e.vm("keep"); v.State != "running" || !system.ProcessAlive(keep.PID, 0) {
		t.Errorf("running vm on a full disk: %s pid %d alive %v", v.State, keep.PID, system.ProcessAlive(keep.PID, 0))
	}

	// Space freed: the same create works.
	for _, f := range []string{filler, filepath.Join(dir, "filler2")} {
		_ = exec.Command("rm", "-f", f).Run()
	}
	e.must("vm", "create", "more", "--no-start", "--memory", "256M", "--disk", "64M")
	e.must("vm", "rm", "--all", "--force")
	if out, errOut, code := e.banger("system", "check"); code != 0 {
		t.Errorf("system check at the end: exit %d\n%s%s", code, out, errOut)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
