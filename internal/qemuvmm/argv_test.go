package qemuvmm

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBuildArgvTCG(t *testing.T) {
	got := BuildArgv(LaunchConfig{
		QEMU:    "/usr/bin/qemu-system-x86_64",
		Name:    "dev",
		Accel:   Accel{Kind: AccelTCG, TSCKHz: 2596138},
		VCPUs:   2,
		MemMiB:  512,
		Kernel:  "/img/vmlinuz",
		Initrd:  "/img/initrd.img",
		Cmdline: "console=ttyS0 root=/dev/vda rw",
		Drives: []LaunchDrive{
			{Node: "drive0", Path: "/disks/root,1.ext4", Cache: "unsafe"},
			{Node: "drive1", Path: "/disks/seed.iso", ReadOnly: true, Cache: "writeback"},
		},
		NICs:      []LaunchNIC{{Netdev: "net0", Tap: "tap-dev", MAC: "06:00:0a:00:00:02"}},
		QMPSocket: "/run/banger/dev.sock.qmp",
	})
	want := []string{
		"/usr/bin/qemu-system-x86_64",
		"-name", "guest=dev",
		"-M", "microvm,acpi=on,x-option-roms=off",
		"-accel", "tcg,tb-size=64",
		"-m", "512M", "-smp", "2",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-chardev", "stdio,id=console,signal=off",
		"-serial", "chardev:console",
		"-kernel", "/img/vmlinuz",
		"-initrd", "/img/initrd.img",
		"-append", "console=ttyS0 root=/dev/vda rw",
		"-drive", "id=drive0,file=/disks/root,,1.ext4,format=raw,if=none,cache=unsafe,file.locking=off",
		"-device", "virtio-blk-device,drive=drive0",
		"-drive", "id=drive1,file=/disks/seed.iso,format=raw,if=none,cache=writeback,file.locking=off,readonly=on",
		"-device", "virtio-blk-device,drive=drive1",
		"-netdev", "tap,id=net0,ifname=tap-dev,script=no,downscript=no",
		"-device", "virtio-net-device,netdev=net0,mac=06:00:0a:00:00:02",
		"-object", "rng-builtin,id=rng0", "-device", "virtio-rng-device,rng=rng0",
		"-qmp", "unix:/run/banger/dev.sock.qmp,server=on,wait=off",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("BuildArgv (-want +got):\n%s", diff)
	}
}

func TestBuildArgvKVMWithoutInitrd(t *testing.T) {
	got := strings.Join(BuildArgv(LaunchConfig{
		QEMU: "qemu-system-x86_64", Name: "a", Accel: Accel{Kind: AccelKVM},
		VCPUs: 1, MemMiB: 128, Kernel: "/k", Cmdline: "quiet", QMPSocket: "/q",
		NICs: []LaunchNIC{{Netdev: "net0", Tap: "tap0"}},
	}), " ")
	for _, want := range []string{"-accel kvm -cpu host", "-device virtio-net-device,netdev=net0 -qmp"} {
		if !strings.Contains(got, want) {
			t.Errorf("argv lacks %q: %s", want, got)
		}
	}
	for _, unwanted := range []string{"-initrd", "tb-size", "mac=", "virtio-rng"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("argv has %q: %s", unwanted, got)
		}
	}
}

func TestKernelCmdline(t *testing.T) {
	tcg := Accel{Kind: AccelTCG, TSCKHz: 3000000}
	for _, tc := range []struct {
		name  string
		args  string
		root  *Drive
		accel Accel
		want  string
	}{
		{"no root, kvm", "console=ttyS0  panic=1", nil, Accel{Kind: AccelKVM}, "console=ttyS0 panic=1"},
		{"root rw, tcg", "console=ttyS0", &Drive{IsReadOnly: ptr(false)}, tcg, "console=ttyS0 root=/dev/vda rw tsc_early_khz=3000000 tsc=reliable"},
		{"root ro partuuid", "", &Drive{IsReadOnly: ptr(true), Partuuid: "abcd-01"}, Accel{Kind: AccelKVM}, "root=PARTUUID=abcd-01 ro"},
		{"tcg unknown tsc", "x", nil, Accel{Kind: AccelTCG}, "x tsc=reliable"},
	} {
		if got := KernelCmdline(tc.args, tc.root, tc.accel); got != tc.want {
			t.Errorf("%s: KernelCmdline = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestChooseAccel(t *testing.T) {
	denied := &os.PathError{Op: "open", Path: "/dev/kvm", Err: os.ErrPermission}
	missing := &os.PathError{Op: "open", Path: "/dev/kvm", Err: os.ErrNotExist}
	for _, tc := range []struct {
		name   string
		want   string
		facts  HostFacts
		kind   string
		reason string
	}{
		{"pvm only", "auto", HostFacts{Modules: map[string]bool{"kvm_pvm": true}}, AccelTCG, "PVM-only"},
		{"pvm beside vmx", "auto", HostFacts{Modules: map[string]bool{"kvm_pvm": true, "kvm_intel": true}}, AccelKVM, "usable"},
		{"kvm intel", "", HostFacts{Modules: map[string]bool{"kvm_intel": true}}, AccelKVM, "usable"},
		{"no device", "auto", HostFacts{KVMErr: missing}, AccelTCG, "does not exist"},
		{"no permission", "auto", HostFacts{KVMErr: denied}, AccelTCG, "not usable"},
		{"forced tcg", "tcg", HostFacts{Modules: map[string]bool{"kvm_intel": true}}, AccelTCG, "forced"},
		{"forced kvm", "kvm", HostFacts{KVMErr: missing}, AccelKVM, "forced"},
	} {
		got, err := ChooseAccel(tc.want, tc.facts)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got.Kind != tc.kind || !strings.Contains(got.Reason, tc.reason) {
			t.Errorf("%s: ChooseAccel = %+v, want %s (%s)", tc.name, got, tc.kind, tc.reason)
		}
	}
	if _, err := ChooseAccel("hvf", HostFacts{}); err == nil {
		t.Error("unknown accel: want error")
	}
}

func TestHostTSCKHz(t *testing.T) {
	dmesg := []byte(`[    0.000000] [Firmware Bug]: TSC doesn't count with P0 frequency!
[    0.000052] tsc: Detected 2596.138 MHz processor
[    0.391649] clocksource: Switched to clocksource tsc
`)
	refined := append(append([]byte{}, dmesg...), "[    1.2] tsc: Refined TSC clocksource calibration: 2595.990 MHz\n"...)
	cpuinfo := []byte("processor\t: 0\ncpu MHz\t\t: 2596.138\nflags\t\t: fpu tsc constant_tsc nonstop_tsc\n\nprocessor\t: 1\ncpu MHz\t\t: 1200.000\n")
	for _, tc := range []struct {
		name     string
		log, cpu []byte
		want     int64
	}{
		{"detected", dmesg, nil, 2596138},
		{"refined wins", refined, cpuinfo, 2595990},
		{"cpuinfo fallback", nil, cpuinfo, 2596138},
		{"no constant tsc", nil, []byte("cpu MHz\t: 800.000\nflags\t: fpu tsc\n"), 0},
		{"nothing", nil, nil, 0},
	} {
		if got := HostTSCKHz(tc.log, tc.cpu); got != tc.want {
			t.Errorf("%s: HostTSCKHz = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestParseArgs(t *testing.T) {
	// The argv firecracker-go-sdk builds, plus every Firecracker flag it may pass.
	o, err := ParseArgs([]string{"--api-sock", "/run/vm.sock", "--id", "vm1", "--no-seccomp",
		"--log-path", "/tmp/l", "--level", "Debug", "--show-level", "--show-log-origin", "--seccomp-filter", "/f"})
	if err != nil {
		t.Fatal(err)
	}
	want := Options{APISock: "/run/vm.sock", ID: "vm1", LogPath: "/tmp/l", Level: "Debug", ShowLevel: true,
		ShowOrigin: true, NoSeccomp: true, SeccompFilter: "/f", QEMU: "qemu-system-x86_64", Accel: "auto"}
	if diff := cmp.Diff(want, o); diff != "" {
		t.Errorf("ParseArgs (-want +got):\n%s", diff)
	}
	if o, err := ParseArgs([]string{"--api-sock=/s", "--accel=tcg", "--qemu=/opt/qemu"}); err != nil || o.Accel != "tcg" || o.QEMU != "/opt/qemu" {
		t.Errorf("ParseArgs with = forms: %+v, %v", o, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--api-sock", "/s", "--boot-timer"}, "unknown flag: -boot-timer"},
		{[]string{"--id", "x"}, "--api-sock is required"},
		{[]string{"--api-sock", "/s", "extra"}, `unexpected argument "extra"`},
		{[]string{"--api-sock", "/s", "--level", "Loud"}, "unknown log level"},
		{[]string{"--api-sock", "/s", "--accel", "hvf"}, "want auto, kvm or tcg"},
	} {
		if _, err := ParseArgs(tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseArgs(%q) = %v, want error containing %q", tc.args, err, tc.want)
		}
	}
	if o, err := ParseArgs([]string{"--version"}); err != nil || !o.Version {
		t.Errorf("--version: %+v, %v", o, err)
	}
}

func TestVersionLine(t *testing.T) {
	for in, want := range map[string]string{
		"dev":    "banger-vmm-qemu 0.0.0-dev (Firecracker API 1.0.0)",
		"v0.3.1": "banger-vmm-qemu 0.3.1 (Firecracker API 1.0.0)",
	} {
		if got := VersionLine(in); got != want {
			t.Errorf("VersionLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMainUsageErrors(t *testing.T) {
	var out, errOut strings.Builder
	if code := Main([]string{"--bogus"}, nil, &out, &errOut); code != ExitUsage || !strings.Contains(errOut.String(), "unknown flag") {
		t.Errorf("Main(--bogus) = %d, stderr %q", code, errOut.String())
	}
	out.Reset()
	if code := Main([]string{"--version"}, nil, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "banger-vmm-qemu ") {
		t.Errorf("Main(--version) = %d, stdout %q", code, out.String())
	}
}

func TestBuildArgvSharedRAMAndIncoming(t *testing.T) {
	got := strings.Join(BuildArgv(LaunchConfig{
		QEMU: "qemu-system-x86_64", Name: "a", Accel: Accel{Kind: AccelTCG},
		VCPUs: 1, MemMiB: 256, Kernel: "/k", Cmdline: "quiet", QMPSocket: "/q",
		RAMPath: "/proc/self/fd/3", Incoming: true,
	}), " ")
	for _, want := range []string{
		"-M microvm,acpi=on,x-option-roms=off,memory-backend=ram ",
		"-m 256M -smp 1 -object memory-backend-file,id=ram,size=256M,share=on,mem-path=/proc/self/fd/3 -nodefaults",
		"server=on,wait=off -S -incoming defer",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("argv lacks %q: %s", want, got)
		}
	}
}
