package firecracker

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"banger/internal/system"
	"banger/internal/testutil"
)

// TestBootsRealGuestThroughQEMUVMM drives banger-vmm-qemu (this test binary
// in that role) exactly as the daemon will: start in its own session,
// configure and boot a real guest, adopt it from a second driver, then stop
// it with ctrl-alt-del. The guest has no network interface: TAPs belong in
// a network namespace, which the end-to-end tier sets up.
func TestBootsRealGuestThroughQEMUVMM(t *testing.T) {
	d, logs, _, p := bootRealGuest(t, "fc-guest-test")
	ctx := context.Background()
	other, _ := testDriver(t)
	if state, err := other.Adopt(ctx, p); err != nil || state != StateRunning {
		t.Fatalf("Adopt = %q, %v; want Running", state, err)
	}
	if err := d.Shutdown(ctx, p, 2*time.Minute); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if !strings.Contains(logs.String(), "vmm stopped after ctrl-alt-del") {
		t.Errorf("guest did not stop on ctrl-alt-del:\n%s", logs)
	}
	if e := wait(t, d, p); !e.Known || e.Code != 0 {
		t.Errorf("banger-vmm-qemu %v, want exit status 0", e)
	}
}

// TestSnapshotsRealGuestThroughQEMUVMM pauses and resumes a real guest,
// snapshots it, kills its VMM and restores it into a new one through the
// SDK's own calls (PauseVM, ResumeVM, CreateSnapshot, WithSnapshot); the
// restored guest still runs systemd: it powers off on ctrl-alt-del.
func TestSnapshotsRealGuestThroughQEMUVMM(t *testing.T) {
	d, logs, s, p := bootRealGuest(t, "fc-snap-test")
	ctx := context.Background()
	snap := Snapshot{StatePath: filepath.Join(s.StateDir, "vm.snap"), MemPath: filepath.Join(s.StateDir, "vm.mem")}
	if err := d.CreateSnapshot(ctx, p, snap); err == nil {
		t.Fatal("CreateSnapshot of a running guest succeeded; Firecracker requires a pause")
	}
	for _, op := range []func(context.Context, Process) error{d.Pause, d.Resume, d.Pause} {
		if err := op(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if state, err := d.Adopt(ctx, p); err != nil || state != StatePaused {
		t.Fatalf("Adopt of a paused vm = %q, %v; want Paused", state, err)
	}
	if err := d.CreateSnapshot(ctx, p, snap); err != nil {
		t.Fatalf("CreateSnapshot: %v", err)
	}
	for _, f := range []string{snap.StatePath, snap.MemPath} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d bytes, %d allocated", filepath.Base(f), st.Size(), st.Sys().(*syscall.Stat_t).Blocks*512)
	}
	if err := d.Kill(ctx, p); err != nil {
		t.Fatal(err)
	}
	wait(t, d, p)
	mark := len(readFile(t, s.ConsoleLogPath()))
	start := time.Now()
	p2, err := d.Restore(ctx, s, snap, true)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	t.Logf("restored in %s", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() { _ = d.Kill(ctx, p2) })
	if state, err := d.Adopt(ctx, p2); err != nil || state != StateRunning {
		t.Fatalf("Adopt of the restored vm = %q, %v; want Running", state, err)
	}
	if err := d.Shutdown(ctx, p2, 2*time.Minute); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if !strings.Contains(logs.String(), "vmm stopped after ctrl-alt-del") {
		t.Errorf("restored guest did not stop on ctrl-alt-del:\n%s", logs)
	}
	if after := readFile(t, s.ConsoleLogPath())[mark:]; !strings.Contains(after, "reboot: Power down") {
		t.Errorf("restored guest's console shows no power-off:\n%s", tail([]byte(after)))
	}
}

// TestCloneRealGuestThroughQEMUVMM is the VMM half of `vm clone`: a
// running guest is paused, snapshotted and its root disk copied; it then
// runs on while a second VMM loads the snapshot paused (opening the
// source's disk, which the source still uses), moves the root drive to
// the copy through PATCH /drives (Driver.RestoreAs), and resumes. Both guests then power off
// on ctrl-alt-del: the clone's shutdown writes its file system (the
// unmount) to the copy, and the source's disk is not touched by it.
func TestCloneRealGuestThroughQEMUVMM(t *testing.T) {
	d, logs, s, p := bootRealGuest(t, "fc-clone-src")
	ctx := context.Background()
	snap := Snapshot{StatePath: filepath.Join(s.StateDir, "clone.snap"), MemPath: filepath.Join(s.StateDir, "clone.mem")}
	if err := d.Pause(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateSnapshot(ctx, p, snap); err != nil {
		t.Fatalf("CreateSnapshot: %v", err)
	}
	copyRoot := filepath.Join(filepath.Dir(s.RootDrive), "clone-root.ext4")
	if out, err := exec.Command("cp", "--reflink=auto", "--sparse=always", s.RootDrive, copyRoot).CombinedOutput(); err != nil {
		t.Fatalf("copying the root disk: %v: %s", err, out)
	}
	copied := testutil.FileSHA256(t, copyRoot)
	if err := d.Resume(ctx, p); err != nil {
		t.Fatal(err)
	}

	dir := shortDir(t)
	cs := s
	cs.ID, cs.Socket, cs.StateDir = "fc-clone-new", filepath.Join(dir, "api.sock"), filepath.Join(dir, "state")
	cs.RootDrive = copyRoot
	p2, err := d.RestoreAs(ctx, cs, snap)
	if err != nil {
		t.Fatalf("RestoreAs while the source runs: %v", err)
	}
	t.Cleanup(func() { _ = d.Kill(ctx, p2) })
	if state, err := d.Adopt(ctx, p2); err != nil || state != StatePaused {
		t.Fatalf("Adopt of the loaded clone = %q, %v; want Paused", state, err)
	}
	if err := d.Resume(ctx, p2); err != nil {
		t.Fatal(err)
	}
	if err := d.Shutdown(ctx, p, 2*time.Minute); err != nil {
		t.Fatalf("Shutdown of the source: %v", err)
	}
	source := testutil.FileSHA256(t, s.RootDrive)
	if err := d.Shutdown(ctx, p2, 2*time.Minute); err != nil {
		t.Fatalf("Shutdown of the clone: %v", err)
	}
	if !strings.Contains(readFile(t, cs.ConsoleLogPath()), "reboot: Power down") {
		t.Errorf("the clone's console shows no power-off:\n%s\nlog:\n%s", tail([]byte(readFile(t, cs.ConsoleLogPath()))), logs)
	}
	if testutil.FileSHA256(t, s.RootDrive) != source {
		t.Error("the clone wrote to the source's root disk")
	}
	if testutil.FileSHA256(t, copyRoot) == copied {
		t.Error("the clone's shutdown left its copy of the root disk unchanged: its writes went elsewhere")
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// bootRealGuest boots the bootstrapped guest image through banger-vmm-qemu
// (this test binary in that role) with driver d and waits for multi-user.
// Nothing it started outlives the test.
func bootRealGuest(t *testing.T, id string) (*Driver, *testutil.SyncBuffer, Spec, Process) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "qemu-system-x86_64", "cp")
	testutil.Short(t, "boots a real guest under QEMU")
	img := testutil.GuestImage(t)

	dir := shortDir(t)
	root := filepath.Join(dir, "root.ext4")
	if out, err := exec.Command("cp", "--reflink=auto", "--sparse=always", img.Rootfs, root).CombinedOutput(); err != nil {
		t.Fatalf("copying rootfs: %v: %s", err, out)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(envFakeVMM, modeQEMU)
	s := Spec{
		ID:        id,
		Binary:    exe,
		Socket:    filepath.Join(dir, "api.sock"),
		StateDir:  filepath.Join(dir, "state"),
		Kernel:    img.Vmlinux,
		Initrd:    img.Initrd,
		RootDrive: root,
		VCPUs:     1,
		MemoryMiB: 512,
	}
	t.Cleanup(func() {
		// Nothing may outlive the test: not the VMM, not its QEMU.
		for _, p := range system.Processes() {
			if strings.Contains(strings.Join(p.Args, " "), dir) && system.ProcessAlive(p.PID, 0) {
				t.Errorf("process %d %q still running", p.PID, p.Args)
				_ = syscallKill(p.PID)
			}
		}
	})
	d, logs := testDriver(t)
	d.termTimeout = 10 * time.Second
	ctx := context.Background()
	p, err := d.Start(ctx, s)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			console, _ := os.ReadFile(s.ConsoleLogPath())
			vmmLog, _ := os.ReadFile(s.VMMLogPath())
			t.Logf("console.log:\n%s\nvmm.log:\n%s\ndriver log:\n%s", tail(console), tail(vmmLog), logs)
		}
		_ = d.Kill(ctx, p)
	})

	waitConsole(t, d, s, p, "login:", "Multi-User System")
	return d, logs, s, p
}

// waitConsole waits until the console log holds one of the words.
func waitConsole(t *testing.T, d *Driver, s Spec, p Process, words ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		console, _ := os.ReadFile(s.ConsoleLogPath())
		// The login prompt, or systemd's multi-user target: the serial
		// getty's prompt sometimes comes late under TCG.
		for _, w := range words {
			if strings.Contains(string(console), w) {
				return
			}
		}
		if !d.Alive(p) {
			t.Fatalf("vmm exited before the console showed %q", words)
		}
		if time.Now().After(deadline) {
			t.Fatalf("console did not show %q within 5 minutes", words)
		}
		time.Sleep(500 * time.Millisecond)
	}

}
