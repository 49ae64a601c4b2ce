package qemuvmm_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	firecracker "github.com/firecracker-microvm/firecracker-go-sdk"
	"github.com/firecracker-microvm/firecracker-go-sdk/client/models"
	"github.com/sirupsen/logrus"

	"banger/internal/system"
	"banger/internal/testutil"
)

// TestGuestSeesOnlineResize is the guest tier of PATCH /drives: a booted
// guest with a 64 MiB work drive, whose file then grows to 128 MiB, must
// see the new capacity once the daemon's call, the SDK's
// Machine.UpdateGuestDrive, returns. The guest kernel reports the change
// on the console (systemd-sysctl is masked so that Debian's console log
// level does not hide it). No network is needed.
func TestGuestSeesOnlineResize(t *testing.T) {
	testutil.Short(t, "boots a real guest under QEMU")
	testutil.RequireTool(t, "qemu-system-x86_64", "go")
	img := testutil.GuestImage(t)
	tmp := t.TempDir()
	bin := buildVMM(t, tmp)
	rootfs := filepath.Join(tmp, "rootfs.ext4")
	run(t, "cp", "--reflink=auto", "--sparse=always", img.Rootfs, rootfs)
	work := filepath.Join(tmp, "work.ext4")
	if err := os.WriteFile(work, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(work, 64<<20); err != nil {
		t.Fatal(err)
	}

	sock := filepath.Join(shortDir(t), "vm.sock")
	console := newWatcher("login:")
	vmmLog := newWatcher("qemu started")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := firecracker.VMCommandBuilder{}.
		WithBin(bin).WithSocketPath(sock).AddArgs("--id", "resize").
		WithStdout(console).WithStderr(vmmLog).Build(ctx)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	m, err := firecracker.NewMachine(ctx, firecracker.Config{
		SocketPath:      sock,
		VMID:            "resize",
		KernelImagePath: img.Kernel,
		InitrdPath:      img.Initrd,
		KernelArgs:      "console=ttyS0 reboot=k panic=1 root=/dev/vda rw loglevel=7 systemd.mask=systemd-sysctl.service",
		Drives:          firecracker.NewDrivesBuilder(rootfs).AddDrive(work, false, firecracker.WithDriveID("work")).Build(),
		MachineCfg:      models.MachineConfiguration{VcpuCount: firecracker.Int64(1), MemSizeMib: firecracker.Int64(384)},
	}, firecracker.WithProcessRunner(cmd), firecracker.WithLogger(logrus.NewEntry(logger)))
	if err != nil {
		t.Fatal(err)
	}
	var qemuPID int
	t.Cleanup(func() {
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
		}
		if qemuPID > 0 && system.ProcessAlive(qemuPID, 0) {
			_ = syscall.Kill(qemuPID, syscall.SIGKILL)
		}
	})
	if err := m.Start(ctx); err != nil {
		t.Fatalf("starting the VM: %v\nvmm log:\n%s", err, vmmLog)
	}
	qemuPID = findQEMUPID(t, vmmLog)
	if !console.wait(120 * time.Second) {
		t.Fatalf("console never reached the login prompt; console:\n%s", tail(console.String()))
	}

	if err := os.Truncate(work, 128<<20); err != nil {
		t.Fatal(err)
	}
	resized := time.Now()
	if err := m.UpdateGuestDrive(ctx, "work", work); err != nil {
		t.Fatalf("UpdateGuestDrive: %v\nvmm log:\n%s", err, vmmLog)
	}
	// 128 MiB is 262144 sectors: "vdb: detected capacity change from
	// 131072 to 262144" and virtio_blk's "[vdb] new size: 262144 …".
	deadline := time.Now().Add(20 * time.Second)
	for resizeLine(console.String()) == "" {
		if time.Now().After(deadline) {
			t.Fatalf("the guest did not report the new capacity; console:\n%s", tail(console.String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("guest saw the new size %s after the PATCH: %s", time.Since(resized).Round(time.Millisecond), resizeLine(console.String()))

	if err := m.Shutdown(ctx); err != nil {
		t.Fatalf("SendCtrlAltDel: %v", err)
	}
	waitCtx, waitCancel := context.WithTimeout(ctx, 20*time.Second)
	defer waitCancel()
	if err := m.Wait(waitCtx); err != nil {
		t.Errorf("vmm did not exit within 20 s of SendCtrlAltDel: %v", err)
	}
}

// resizeLine is the console line where the guest kernel reports vdb's new
// size of 262144 sectors, or "".
func resizeLine(console string) string {
	for _, line := range strings.Split(console, "\n") {
		if strings.Contains(line, "vdb") && strings.Contains(line, "262144") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}
