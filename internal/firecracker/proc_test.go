package firecracker

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPickVMM(t *testing.T) {
	const sock = "/run/banger/vm1.sock"
	vmm := []string{"/usr/bin/firecracker", "--api-sock", sock, "--id", "vm1"}
	sudo := []string{"sudo", "-n", "--", "/usr/bin/firecracker", "--api-sock", sock, "--id", "vm1"}
	tests := []struct {
		name    string
		parents map[int]int
		args    map[int][]string
		want    int
	}{{
		name:    "sudo runs the vmm as its child",
		parents: map[int]int{100: 1, 101: 100, 200: 1},
		args:    map[int][]string{100: sudo, 101: vmm, 200: {"bash"}},
		want:    101,
	}, {
		name:    "sudo with use_pty: a sudo monitor in between",
		parents: map[int]int{100: 1, 101: 100, 102: 101},
		args:    map[int][]string{100: sudo, 101: sudo, 102: vmm},
		want:    102,
	}, {
		name:    "child forked but not yet exec'd",
		parents: map[int]int{100: 1, 101: 100},
		args:    map[int][]string{100: sudo, 101: sudo},
		want:    0,
	}, {
		name:    "a vmm for the same socket elsewhere is not ours",
		parents: map[int]int{100: 1, 300: 1},
		args:    map[int][]string{100: sudo, 300: vmm},
		want:    0,
	}, {
		name:    "a vmm child for another socket",
		parents: map[int]int{100: 1, 101: 100},
		args:    map[int][]string{100: sudo, 101: {"/usr/bin/firecracker", "--api-sock", "/other.sock"}},
		want:    0,
	}, {
		name:    "vmm with helpers of its own (banger-vmm-qemu and qemu)",
		parents: map[int]int{100: 1, 101: 100, 102: 101},
		args: map[int][]string{100: sudo, 101: {"/usr/lib/banger/banger-vmm-qemu", "--api-sock", sock, "--id", "vm1"},
			102: {"qemu-system-x86_64", "-M", "microvm"}},
		want: 101,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pickVMM(tt.parents, 100, sock, func(pid int) []string { return tt.args[pid] })
			if got != tt.want {
				t.Errorf("pickVMM = %d, want %d", got, tt.want)
			}
		})
	}
}

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
