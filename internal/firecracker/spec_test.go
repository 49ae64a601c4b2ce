package firecracker

import (
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	sdk "github.com/firecracker-microvm/firecracker-go-sdk"
	models "github.com/firecracker-microvm/firecracker-go-sdk/client/models"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

// sampleSpec is a fully populated spec, as the daemon would build it.
func sampleSpec() Spec {
	return Spec{
		ID:        "0a1b2c3d",
		Binary:    "/usr/lib/banger/firecracker",
		Socket:    "/run/user/1000/banger/vms/0a1b2c3d/api.sock",
		StateDir:  "/home/u/.local/state/banger/vms/0a1b2c3d",
		Kernel:    "/usr/lib/banger/vmlinux",
		Initrd:    "/usr/lib/banger/initrd.img",
		RootDrive: "/home/u/.local/share/banger/vms/0a1b2c3d/root.ext4",
		WorkDrive: "/home/u/.local/share/banger/vms/0a1b2c3d/work.ext4",
		TAP:       "bgr-0a1b2c3d",
		MAC:       "02:fc:0a:1b:2c:3d",
		VCPUs:     2,
		MemoryMiB: 1024,
		Boot: Boot{
			GuestIP:    netip.MustParseAddr("172.30.0.5"),
			Gateway:    netip.MustParseAddr("172.30.0.1"),
			PrefixLen:  24,
			Hostname:   "dev",
			Nameserver: netip.MustParseAddr("172.30.0.1"),
		},
	}
}

func TestBootArgs(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Spec)
		want string
	}{{
		name: "full",
		edit: func(*Spec) {},
		want: "console=ttyS0 reboot=k panic=1 root=/dev/vda rw ip=172.30.0.5::172.30.0.1:255.255.255.0:dev:eth0:off:172.30.0.1",
	}, {
		name: "no nameserver, /20",
		edit: func(s *Spec) { s.Boot.Nameserver = netip.Addr{}; s.Boot.PrefixLen = 20 },
		want: "console=ttyS0 reboot=k panic=1 root=/dev/vda rw ip=172.30.0.5::172.30.0.1:255.255.240.0:dev:eth0:off",
	}, {
		name: "read-only root with extras",
		edit: func(s *Spec) {
			s.RootReadOnly = true
			s.Boot.Extra = []string{"pci=off", " ", "tsc=reliable"}
		},
		want: "console=ttyS0 reboot=k panic=1 root=/dev/vda ro ip=172.30.0.5::172.30.0.1:255.255.255.0:dev:eth0:off:172.30.0.1 pci=off tsc=reliable",
	}, {
		name: "no network",
		edit: func(s *Spec) { s.Boot = Boot{Extra: []string{"init=/bin/sh"}} },
		want: "console=ttyS0 reboot=k panic=1 root=/dev/vda rw init=/bin/sh",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := sampleSpec()
			tt.edit(&s)
			if diff := cmp.Diff(tt.want, BootArgs(s)); diff != "" {
				t.Errorf("BootArgs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBuildConfigGolden(t *testing.T) {
	cfg, err := BuildConfig(sampleSpec())
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	golden := filepath.Join("testdata", "config.golden.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("config differs from %s (-want +got):\n%s", golden, diff)
	}
}

func TestBuildConfigMinimal(t *testing.T) {
	s := Spec{
		ID: "vm-1", Socket: "/s/api.sock", StateDir: "/st", Kernel: "/k/vmlinux",
		RootDrive: "/d/root.ext4", RootReadOnly: true, VCPUs: 1, MemoryMiB: 256,
	}
	got, err := BuildConfig(s)
	if err != nil {
		t.Fatal(err)
	}
	want := sdk.Config{
		VMID:            "vm-1",
		SocketPath:      "/s/api.sock",
		LogPath:         "/st/vmm.log",
		LogLevel:        "Info",
		KernelImagePath: "/k/vmlinux",
		KernelArgs:      "console=ttyS0 reboot=k panic=1 root=/dev/vda ro",
		Drives: []models.Drive{{
			DriveID:      sdk.String("rootfs"),
			PathOnHost:   sdk.String("/d/root.ext4"),
			IsRootDevice: sdk.Bool(true),
			IsReadOnly:   sdk.Bool(true),
			CacheType:    sdk.String("Writeback"),
		}},
		MachineCfg: models.MachineConfiguration{VcpuCount: sdk.Int64(1), MemSizeMib: sdk.Int64(256)},
		Seccomp:    sdk.SeccompConfig{Enabled: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("BuildConfig (-want +got):\n%s", diff)
	}
}

func TestValidate(t *testing.T) {
	bad := Spec{
		ID:        "bad id!",
		Socket:    "/" + strings.Repeat("s", 120),
		MAC:       "02:zz",
		VCPUs:     0,
		MemoryMiB: -1,
		Boot:      Boot{GuestIP: netip.MustParseAddr("fd00::5"), PrefixLen: 64, Hostname: "a:b"},
	}
	err := bad.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad spec")
	}
	for _, want := range []string{
		`vm id "bad id!"`, "state directory is not set", "kernel image is not set",
		"root drive is not set", "121 bytes long", "vcpus 0", "memory -1 MiB",
		"guest mac is set but no tap device", "only IPv4", "prefix length 64", `hostname "a:b"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if err := sampleSpec().Validate(); err != nil {
		t.Errorf("sample spec rejected: %v", err)
	}
	s := sampleSpec()
	s.MAC = "not-a-mac"
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), `guest mac "not-a-mac"`) {
		t.Errorf("bad MAC: got %v", err)
	}
}

func TestVMMArgs(t *testing.T) {
	cfg, err := BuildConfig(sampleSpec())
	if err != nil {
		t.Fatal(err)
	}
	got := VMMArgs("/usr/bin/firecracker", cfg)
	want := []string{"/usr/bin/firecracker", "--api-sock", "/run/user/1000/banger/vms/0a1b2c3d/api.sock", "--id", "0a1b2c3d"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("VMMArgs (-want +got):\n%s", diff)
	}
}

func TestSpecPaths(t *testing.T) {
	s := Spec{StateDir: "/st"}
	got := []string{s.VMMLogPath(), s.ConsoleLogPath(), s.binary()}
	want := []string{"/st/vmm.log", "/st/console.log", "firecracker"}
	if !cmp.Equal(want, got) {
		t.Errorf("paths: want %q, got %q", want, got)
	}
}

func TestLayerDriveMakesTheRootReadOnlyAndNamesTheLayer(t *testing.T) {
	s := sampleSpec()
	s.LayerDrive = "/d/layer.ext4"
	cfg, err := BuildConfig(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Drives) != 3 || !*cfg.Drives[0].IsReadOnly || *cfg.Drives[2].DriveID != LayerDriveID || *cfg.Drives[2].IsReadOnly {
		t.Errorf("drives with a layer: %+v", cfg.Drives)
	}
	for _, want := range []string{"root=/dev/vda ro", "banger.layer=LABEL=banger-layer"} {
		if !strings.Contains(cfg.KernelArgs, want) {
			t.Errorf("boot args %q lack %q", cfg.KernelArgs, want)
		}
	}
}
