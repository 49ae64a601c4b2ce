package firecracker

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCmdline(t *testing.T) {
	args, err := cmdline(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(os.Args, args) {
		t.Errorf("cmdline of self = %q, want %q", args, os.Args)
	}
	if args, err := cmdline(1<<22 + 1); err == nil {
		t.Errorf("cmdline of a missing pid = %q, want an error", args)
	}
}

func TestServingSocketsFindsAVMMBySocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "x.sock")
	// sh keeps its whole argv in /proc/PID/cmdline while it waits for sleep.
	cmd := exec.Command("sh", "-c", "sleep 30; true", "fake-vmm", "--api-sock", sock, "--id", "x")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	time.Sleep(50 * time.Millisecond)
	p, ok := ServingSockets()[sock]
	if !ok || p.PID != cmd.Process.Pid || p.StartTime == 0 {
		t.Errorf("ServingSockets()[%s] = %+v, %v; want pid %d", sock, p, ok, cmd.Process.Pid)
	}
}
