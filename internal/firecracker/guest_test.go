package firecracker

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
		ID:        "fc-guest-test",
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
	defer func() {
		if t.Failed() {
			console, _ := os.ReadFile(s.ConsoleLogPath())
			vmmLog, _ := os.ReadFile(s.VMMLogPath())
			t.Logf("console.log:\n%s\nvmm.log:\n%s\ndriver log:\n%s", tail(console), tail(vmmLog), logs)
			_ = d.Kill(ctx, p)
		}
	}()

	deadline := time.Now().Add(5 * time.Minute)
	for {
		console, _ := os.ReadFile(s.ConsoleLogPath())
		// The login prompt, or systemd's multi-user target: the serial
		// getty's prompt sometimes comes late under TCG.
		if strings.Contains(string(console), "login:") || strings.Contains(string(console), "Multi-User System") {
			break
		}
		if !d.Alive(p) {
			t.Fatal("vmm exited before the guest reached multi-user")
		}
		if time.Now().After(deadline) {
			t.Fatal("guest did not reach multi-user within 5 minutes")
		}
		time.Sleep(500 * time.Millisecond)
	}

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

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
