package qemuvmm_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	firecracker "github.com/firecracker-microvm/firecracker-go-sdk"
	"github.com/firecracker-microvm/firecracker-go-sdk/client/models"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"banger/internal/qemuvmm"
	"banger/internal/testutil"
)

// BenchmarkBootToSSH boots the guest image alternately through
// banger-vmm-qemu (driven by firecracker-go-sdk, from process start to SSH
// banner, so socket wait and every API call count) and by running the very
// same QEMU command line by hand, and reports the medians and their ratio
// (target ≤ 1.05). Each boot gets a fresh copy of the root disk.
//
// It needs root, QEMU, a guest image and a private network namespace, so
// it runs only through bench/vmm-qemu.sh, which provides the namespace and
// sets BANGER_BENCH_NETNS=1. BANGER_BENCH_ROUNDS sets the rounds (5).
func BenchmarkBootToSSH(b *testing.B) {
	if os.Getenv("BANGER_BENCH_NETNS") != "1" {
		b.Skip("run through bench/vmm-qemu.sh, which gives it a private network namespace")
	}
	testutil.RequireRoot(b)
	testutil.RequireTool(b, "qemu-system-x86_64", "ip")
	if ifs, err := net.Interfaces(); err != nil || len(ifs) != 1 {
		b.Fatalf("not in a fresh network namespace (interfaces %v, %v); refusing to touch the host network", ifs, err)
	}
	rounds := 5
	if s := os.Getenv("BANGER_BENCH_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	img := testutil.GuestImage(b)
	tmp := b.TempDir()
	bin := os.Getenv("BANGER_VMM_QEMU")
	if bin == "" {
		bin = buildVMM(b, tmp)
	}
	run(b, "ip", "link", "set", "lo", "up")
	run(b, "ip", "tuntap", "add", "dev", "tap0", "mode", "tap")
	defer exec.Command("ip", "link", "del", "tap0").Run()
	run(b, "ip", "addr", "add", hostAddr+"/24", "dev", "tap0")
	run(b, "ip", "link", "set", "tap0", "up")
	sock := filepath.Join(shortDir(b), "vm.sock")
	rootfs := filepath.Join(tmp, "rootfs.ext4")
	bootArgs := "console=ttyS0 reboot=k panic=1 root=/dev/vda rw ip=" + guestAddr + "::" + hostAddr + ":255.255.255.0:bench:eth0:off:" + hostAddr

	// The command line a user would run by hand: what banger-vmm-qemu
	// builds for this configuration, checked against its log below.
	ctx := context.Background()
	accel, err := qemuvmm.ChooseAccel("auto", qemuvmm.ReadHostFacts(ctx, func(ctx context.Context) ([]byte, error) {
		return exec.CommandContext(ctx, "dmesg").Output()
	}))
	if err != nil {
		b.Fatal(err)
	}
	handArgv := qemuvmm.BuildArgv(qemuvmm.LaunchConfig{
		QEMU: "qemu-system-x86_64", Name: "bench", Accel: accel, VCPUs: 2, MemMiB: 512,
		Kernel: img.Kernel, Initrd: img.Initrd,
		Cmdline:   qemuvmm.KernelCmdline(bootArgs, &qemuvmm.Drive{IsReadOnly: firecracker.Bool(false)}, accel),
		Drives:    []qemuvmm.LaunchDrive{{Node: "drive0", Path: rootfs, Cache: "unsafe"}},
		NICs:      []qemuvmm.LaunchNIC{{Netdev: "net0", Tap: "tap0", MAC: guestMAC}},
		QMPSocket: sock + ".qmp",
		// Guest RAM in a memfd on descriptor 3, as banger-vmm-qemu runs it.
		RAMPath: "/proc/self/fd/3",
	})

	viaVMM := func() (time.Duration, error) {
		vmmLog := newWatcher("qemu started")
		cmd := firecracker.VMCommandBuilder{}.WithBin(bin).WithSocketPath(sock).AddArgs("--id", "bench").
			WithStderr(vmmLog).Build(ctx)
		logger := logrus.New()
		logger.SetOutput(io.Discard)
		t0 := time.Now()
		m, err := firecracker.NewMachine(ctx, firecracker.Config{
			SocketPath: sock, VMID: "bench", KernelImagePath: img.Kernel, InitrdPath: img.Initrd, KernelArgs: bootArgs,
			Drives: firecracker.NewDrivesBuilder(rootfs).Build(),
			NetworkInterfaces: []firecracker.NetworkInterface{{
				StaticConfiguration: &firecracker.StaticNetworkConfiguration{MacAddress: guestMAC, HostDevName: "tap0"},
			}},
			MachineCfg: models.MachineConfiguration{VcpuCount: firecracker.Int64(2), MemSizeMib: firecracker.Int64(512)},
		}, firecracker.WithProcessRunner(cmd), firecracker.WithLogger(logrus.NewEntry(logger)))
		if err != nil {
			return 0, err
		}
		if err := m.Start(ctx); err != nil {
			return 0, fmt.Errorf("starting: %w\n%s", err, vmmLog)
		}
		defer func() { _ = m.StopVMM(); _ = m.Wait(ctx) }()
		banner := sshBanner(b, guestAddr+":22", 180*time.Second)
		d := time.Since(t0)
		if !strings.HasPrefix(banner, "SSH-2.0") {
			return 0, fmt.Errorf("banner %q", banner)
		}
		// firecracker-go-sdk reorders the kernel arguments (it keeps them in
		// a map), so the two command lines are compared as sets of words.
		if got := loggedArgv(vmmLog.String()); !sameWords(got, strings.Join(handArgv, " ")) {
			return 0, fmt.Errorf("banger-vmm-qemu ran\n%s\nbut the hand-run command is\n%s", got, strings.Join(handArgv, " "))
		}
		return d, nil
	}
	byHand := func() (time.Duration, error) {
		cmd := exec.Command(handArgv[0], handArgv[1:]...)
		t0 := time.Now()
		fd, err := unix.MemfdCreate("hand-ram", unix.MFD_CLOEXEC)
		if err != nil {
			return 0, err
		}
		ram := os.NewFile(uintptr(fd), "hand-ram")
		defer ram.Close()
		if err := ram.Truncate(512 << 20); err != nil {
			return 0, err
		}
		cmd.ExtraFiles = []*os.File{ram}
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = os.Remove(sock + ".qmp") }()
		banner := sshBanner(b, guestAddr+":22", 180*time.Second)
		d := time.Since(t0)
		if !strings.HasPrefix(banner, "SSH-2.0") {
			return 0, fmt.Errorf("banner %q", banner)
		}
		return d, nil
	}

	var vmm, hand []float64
	b.ResetTimer()
	for r := 0; r < rounds; r++ {
		order := []string{"vmm", "qemu"}
		if r%2 == 1 {
			order = []string{"qemu", "vmm"}
		}
		for _, which := range order {
			run(b, "cp", "--reflink=auto", "--sparse=always", img.Rootfs, rootfs)
			var d time.Duration
			var err error
			if which == "vmm" {
				d, err = viaVMM()
				vmm = append(vmm, d.Seconds())
			} else {
				d, err = byHand()
				hand = append(hand, d.Seconds())
			}
			if err != nil {
				b.Fatalf("round %d, %s: %v", r+1, which, err)
			}
			b.Logf("round %d %-4s boot-to-ssh %.2fs", r+1, which, d.Seconds())
		}
	}
	b.StopTimer()
	mv, mh := median(vmm), median(hand)
	b.ReportMetric(mv, "vmm-median-s")
	b.ReportMetric(mh, "qemu-median-s")
	b.ReportMetric(mv/mh, "ratio")
}

var argvPattern = regexp.MustCompile(`msg="qemu started".* argv="([^"]*)"`)

func loggedArgv(log string) string {
	if m := argvPattern.FindStringSubmatch(log); m != nil {
		return m[1]
	}
	return ""
}

func sameWords(a, b string) bool {
	wa, wb := strings.Fields(a), strings.Fields(b)
	slices.Sort(wa)
	slices.Sort(wb)
	return slices.Equal(wa, wb)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
