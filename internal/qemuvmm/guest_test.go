package qemuvmm_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	firecracker "github.com/firecracker-microvm/firecracker-go-sdk"
	"github.com/firecracker-microvm/firecracker-go-sdk/client/models"
	"github.com/sirupsen/logrus"

	"banger/internal/system"
	"banger/internal/testutil"
)

// Addresses inside the test's own network namespace.
const (
	hostAddr  = "10.201.0.1"
	guestAddr = "10.201.0.2"
	guestMAC  = "06:00:0a:c9:00:02"
)

// TestGuestBootsThroughSDK is the guest tier: it drives the real
// banger-vmm-qemu binary with firecracker-go-sdk exactly as the daemon does
// (socket wait, machine config, boot source, drives, network interface,
// InstanceStart), sees the console reach the login prompt, reads the SSH
// banner over the TAP, and stops the guest with SendCtrlAltDel.
func TestGuestBootsThroughSDK(t *testing.T) {
	testutil.Short(t, "boots a real guest under QEMU")
	if !testutil.InNetns(t) {
		return
	}
	testutil.RequireTool(t, "qemu-system-x86_64", "ip", "go")
	img := testutil.GuestImage(t)
	tmp := t.TempDir()
	bin := buildVMM(t, tmp)
	rootfs := filepath.Join(tmp, "rootfs.ext4")
	run(t, "cp", "--reflink=auto", "--sparse=always", img.Rootfs, rootfs)
	run(t, "ip", "tuntap", "add", "dev", "tap0", "mode", "tap")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", "tap0").Run() })
	run(t, "ip", "addr", "add", hostAddr+"/24", "dev", "tap0")
	run(t, "ip", "link", "set", "tap0", "up")

	sockDir := shortDir(t)
	sock := filepath.Join(sockDir, "vm.sock")
	console := newWatcher("login:")
	vmmLog := newWatcher("qemu started")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := firecracker.VMCommandBuilder{}.
		WithBin(bin).WithSocketPath(sock).AddArgs("--id", "itest").
		WithStdout(console).WithStderr(vmmLog).Build(ctx)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	m, err := firecracker.NewMachine(ctx, firecracker.Config{
		SocketPath:      sock,
		VMID:            "itest",
		KernelImagePath: img.Kernel,
		InitrdPath:      img.Initrd,
		KernelArgs:      "console=ttyS0 reboot=k panic=1 root=/dev/vda rw ip=" + guestAddr + "::" + hostAddr + ":255.255.255.0:itest:eth0:off:" + hostAddr,
		Drives:          firecracker.NewDrivesBuilder(rootfs).Build(),
		NetworkInterfaces: []firecracker.NetworkInterface{{
			StaticConfiguration: &firecracker.StaticNetworkConfiguration{MacAddress: guestMAC, HostDevName: "tap0"},
		}},
		MachineCfg: models.MachineConfiguration{VcpuCount: firecracker.Int64(2), MemSizeMib: firecracker.Int64(512)},
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

	start := time.Now()
	if err := m.Start(ctx); err != nil {
		t.Fatalf("starting the VM through the SDK: %v\nvmm log:\n%s", err, vmmLog)
	}
	t.Logf("InstanceStart returned after %s", time.Since(start).Round(time.Millisecond))
	qemuPID = findQEMUPID(t, vmmLog)

	info, err := m.DescribeInstanceInfo(ctx)
	if err != nil || firecracker.StringValue(info.State) != models.InstanceInfoStateRunning {
		t.Errorf("DescribeInstanceInfo = %+v, %v; want Running", info, err)
	}
	if !console.wait(90 * time.Second) {
		t.Fatalf("console never reached the login prompt; console:\n%s\nvmm log:\n%s", tail(console.String()), vmmLog)
	}
	t.Logf("login prompt after %s", time.Since(start).Round(time.Millisecond))
	banner := sshBanner(t, guestAddr+":22", 30*time.Second)
	if !strings.HasPrefix(banner, "SSH-2.0") {
		t.Fatalf("banner from the guest = %q, want SSH-2.0…", banner)
	}
	t.Logf("SSH banner %q after %s", strings.TrimSpace(banner), time.Since(start).Round(time.Millisecond))

	stopAt := time.Now()
	if err := m.Shutdown(ctx); err != nil {
		t.Fatalf("SendCtrlAltDel: %v", err)
	}
	// A guest under software emulation on a loaded host takes tens of
	// seconds to power off; the bound catches a hang, not a slow stop.
	waitCtx, waitCancel := context.WithTimeout(ctx, 90*time.Second)
	defer waitCancel()
	if err := m.Wait(waitCtx); err != nil {
		t.Fatalf("vmm did not exit cleanly within 90 s of SendCtrlAltDel: %v\nconsole:\n%s\nvmm log:\n%s", err, tail(console.String()), vmmLog)
	}
	t.Logf("vmm exited %s after SendCtrlAltDel", time.Since(stopAt).Round(time.Millisecond))
	if st := cmd.ProcessState; st == nil || st.ExitCode() != 0 {
		t.Errorf("vmm exit state = %v, want exit status 0", st)
	}

	// Nothing survives: QEMU, the sockets.
	if system.ProcessAlive(qemuPID, 0) {
		t.Errorf("qemu pid %d survives the vmm", qemuPID)
	}
	for _, p := range []string{sock, sock + ".qmp"} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("socket %s survives", p)
		}
	}
	run(t, "ip", "link", "del", "tap0")
	if _, err := net.InterfaceByName("tap0"); err == nil {
		t.Error("tap0 survives")
	}
}

func buildVMM(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "banger-vmm-qemu")
	out, err := exec.Command("go", "build", "-o", bin, "banger/cmd/banger-vmm-qemu").CombinedOutput()
	if err != nil {
		t.Fatalf("building banger-vmm-qemu: %v\n%s", err, out)
	}
	return bin
}

func run(t testing.TB, argv ...string) {
	t.Helper()
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}

// shortDir returns a temporary directory with a path short enough for unix
// sockets (t.TempDir can exceed the 108-byte limit).
func shortDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bvq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

var pidPattern = regexp.MustCompile(`msg="qemu started".* pid=(\d+)`)

func findQEMUPID(t *testing.T, log *watcher) int {
	t.Helper()
	if !log.wait(5 * time.Second) {
		t.Fatalf("vmm log never reported the qemu pid:\n%s", log)
	}
	m := pidPattern.FindStringSubmatch(log.String())
	if m == nil {
		t.Fatalf("no qemu pid in vmm log:\n%s", log)
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

// sshBanner connects to addr until it answers and returns its first line.
func sshBanner(t testing.TB, addr string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err == nil {
				return line
			}
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no SSH banner from %s within %s: %v", addr, timeout, lastErr)
	return ""
}

// watcher is an io.Writer that remembers everything and signals when a
// marker has been written.
type watcher struct {
	marker string
	mu     sync.Mutex
	buf    bytes.Buffer
	seen   chan struct{}
	once   sync.Once
}

func newWatcher(marker string) *watcher { return &watcher{marker: marker, seen: make(chan struct{})} }

func (w *watcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if bytes.Contains(w.buf.Bytes(), []byte(w.marker)) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *watcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func (w *watcher) wait(d time.Duration) bool {
	select {
	case <-w.seen:
		return true
	case <-time.After(d):
		return false
	}
}

func tail(s string) string {
	if len(s) > 3000 {
		return "…" + s[len(s)-3000:]
	}
	return s
}
