package firecracker

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"

	sdk "github.com/firecracker-microvm/firecracker-go-sdk"
	models "github.com/firecracker-microvm/firecracker-go-sdk/client/models"
)

// DefaultBinary is the VMM program run when a Spec names none.
const DefaultBinary = "firecracker"

// Drive and interface ids used in the VMM API. The root drive is attached
// first, so the guest sees it as /dev/vda and the work drive as /dev/vdb.
const (
	RootDriveID  = "rootfs"
	WorkDriveID  = "work"
	LayerDriveID = "layer"
	// NetworkInterfaceID is the id of the VM's one network interface; the
	// SDK numbers interfaces from 1, the guest names it eth0.
	NetworkInterfaceID = "1"
)

// File names inside a VM's state directory.
const (
	// VMMLogName is the VMM's own log, configured through PUT /logger.
	VMMLogName = "vmm.log"
	// ConsoleLogName receives the VMM's stdout and stderr, which carry the
	// guest's serial console.
	ConsoleLogName = "console.log"
)

// vmmLogLevel is the level requested through PUT /logger. Every Firecracker
// release accepts it.
const vmmLogLevel = "Info"

// Spec describes how to launch one VM's VMM. It is a plain value: the daemon
// maps its VM record to it, and BuildConfig and BootArgs derive everything
// else from it.
type Spec struct {
	// ID names the VM towards the VMM (`--id`). Firecracker accepts 1 to 64
	// characters from [A-Za-z0-9-].
	ID string
	// Binary is the VMM program: a path or a name looked up in PATH.
	// Empty means DefaultBinary. banger-vmm-qemu works the same way.
	Binary string
	// Socket is the path of the VMM's API socket (`--api-sock`).
	Socket string
	// StateDir is the VM's state directory; vmm.log and console.log live in it.
	StateDir string

	// Kernel is the guest kernel: an uncompressed vmlinux (Firecracker) or
	// a bzImage (banger-vmm-qemu accepts both).
	Kernel string
	// Initrd is the optional initial ramdisk.
	Initrd string
	// Boot holds the pieces of the kernel command line.
	Boot Boot

	// RootDrive is the path of the root disk image (/dev/vda in the guest).
	RootDrive string
	// RootReadOnly attaches the root disk read-only and boots with `ro`.
	RootReadOnly bool
	// WorkDrive is the optional work disk image (/dev/vdb in the guest).
	WorkDrive string
	// LayerDrive is the VM's own writable layer over a shared, read-only
	// root: an ext4 labelled banger-layer whose /upper and /work banger's
	// initramfs mounts as an overlay on the root (banger.layer= on the
	// kernel command line). It makes the root drive read-only.
	LayerDrive string

	// TAP is the host TAP device of the VM's network interface; empty means
	// no network interface.
	TAP string
	// MAC is the guest MAC address of that interface.
	MAC string

	// VCPUs and MemoryMiB size the machine.
	VCPUs     int
	MemoryMiB int
}

// Boot holds the parts of the guest kernel command line that vary per VM.
type Boot struct {
	// GuestIP is the guest's address on eth0; unset means no `ip=` argument.
	GuestIP netip.Addr
	// Gateway is the default gateway (the bridge address).
	Gateway netip.Addr
	// PrefixLen is the length of the network prefix, giving the netmask.
	PrefixLen int
	// Hostname is the guest's host name.
	Hostname string
	// Nameserver is the guest's DNS server; optional.
	Nameserver netip.Addr
	// Extra arguments are appended as given (for example "pci=off").
	Extra []string
}

var vmmIDPattern = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

// Validate reports every problem of the spec at once.
func (s Spec) Validate() error {
	var errs []error
	if !vmmIDPattern.MatchString(s.ID) {
		errs = append(errs, fmt.Errorf("vm id %q: want 1 to 64 characters from A-Z, a-z, 0-9 and '-'", s.ID))
	}
	need := func(what, v string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is not set", what))
		}
	}
	need("api socket path", s.Socket)
	need("state directory", s.StateDir)
	need("kernel image", s.Kernel)
	need("root drive", s.RootDrive)
	// sun_path holds 108 bytes including the terminating NUL.
	if len(s.Socket) > 107 {
		errs = append(errs, fmt.Errorf("api socket path %s is %d bytes long, the limit is 107", s.Socket, len(s.Socket)))
	}
	if s.VCPUs < 1 {
		errs = append(errs, fmt.Errorf("vcpus %d: want at least 1", s.VCPUs))
	}
	if s.MemoryMiB < 1 {
		errs = append(errs, fmt.Errorf("memory %d MiB: want at least 1", s.MemoryMiB))
	}
	if s.TAP != "" && s.MAC != "" {
		if _, err := net.ParseMAC(s.MAC); err != nil {
			errs = append(errs, fmt.Errorf("guest mac %q: %w", s.MAC, err))
		}
	}
	if s.TAP == "" && s.MAC != "" {
		errs = append(errs, errors.New("guest mac is set but no tap device"))
	}
	b := s.Boot
	if b.GuestIP.IsValid() {
		if !b.GuestIP.Is4() {
			errs = append(errs, fmt.Errorf("guest ip %s: only IPv4 can be set on the kernel command line", b.GuestIP))
		}
		if b.PrefixLen < 1 || b.PrefixLen > 32 {
			errs = append(errs, fmt.Errorf("prefix length %d: want 1 to 32", b.PrefixLen))
		}
	}
	if strings.ContainsAny(b.Hostname, ": \t\n") {
		errs = append(errs, fmt.Errorf("hostname %q: must not contain ':' or spaces", b.Hostname))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("checking vmm spec: %w", err)
	}
	return nil
}

// binary returns the VMM program to run.
func (s Spec) binary() string {
	if s.Binary == "" {
		return DefaultBinary
	}
	return s.Binary
}

// VMMLogPath returns the path of the VMM's own log.
func (s Spec) VMMLogPath() string { return filepath.Join(s.StateDir, VMMLogName) }

// ConsoleLogPath returns the path of the guest console log.
func (s Spec) ConsoleLogPath() string { return filepath.Join(s.StateDir, ConsoleLogName) }

// BootArgs builds the guest kernel command line:
//
//	console=ttyS0 reboot=k panic=1 root=/dev/vda rw ip=<guest>::<gw>:<mask>:<hostname>:eth0:off:<dns> <extra…>
//
// `ro` replaces `rw` for a read-only root; `ip=` is left out when the spec
// has no guest address, and its DNS field when there is no nameserver.
// `reboot=k` makes a guest reboot end the VMM process, which is how a
// Ctrl+Alt+Del or a `poweroff` inside the guest stops the VM.
func BootArgs(s Spec) string {
	mode := "rw"
	if s.readOnlyRoot() {
		mode = "ro"
	}
	args := []string{"console=ttyS0", "reboot=k", "panic=1", "root=/dev/vda", mode}
	if s.LayerDrive != "" {
		args = append(args, "banger.layer=LABEL="+LayerLabel)
	}
	if b := s.Boot; b.GuestIP.IsValid() {
		gw := ""
		if b.Gateway.IsValid() {
			gw = b.Gateway.String()
		}
		ip := fmt.Sprintf("ip=%s::%s:%s:%s:eth0:off", b.GuestIP, gw, netmask(b.PrefixLen), b.Hostname)
		if b.Nameserver.IsValid() {
			ip += ":" + b.Nameserver.String()
		}
		args = append(args, ip)
	}
	for _, e := range s.Boot.Extra {
		if e = strings.TrimSpace(e); e != "" {
			args = append(args, e)
		}
	}
	return strings.Join(args, " ")
}

// LayerLabel is the file system label of a VM's layer disk, which the
// initramfs finds it by.
const LayerLabel = "banger-layer"

// readOnlyRoot reports whether the root drive is attached read-only: asked
// for, or shared under a layer.
func (s Spec) readOnlyRoot() bool { return s.RootReadOnly || s.LayerDrive != "" }

// netmask renders an IPv4 prefix length as a dotted netmask.
func netmask(prefixLen int) string {
	if prefixLen < 0 || prefixLen > 32 {
		return ""
	}
	return net.IP(net.CIDRMask(prefixLen, 32)).String()
}

// BuildConfig builds the SDK machine configuration for the spec: machine
// size, boot source, drives (root first), the network interface and the VMM
// log. The config is only data; Start sends it to the VMM.
func BuildConfig(s Spec) (sdk.Config, error) {
	if err := s.Validate(); err != nil {
		return sdk.Config{}, err
	}
	// Writeback: a guest's flush reaches the host's disk (Firecracker's
	// default, Unsafe, drops it).
	drive := func(id, path string, root, ro bool) models.Drive {
		return models.Drive{DriveID: sdk.String(id), PathOnHost: sdk.String(path), IsRootDevice: sdk.Bool(root),
			IsReadOnly: sdk.Bool(ro), CacheType: sdk.String(models.DriveCacheTypeWriteback)}
	}
	drives := []models.Drive{drive(RootDriveID, s.RootDrive, true, s.readOnlyRoot())}
	if s.WorkDrive != "" {
		drives = append(drives, drive(WorkDriveID, s.WorkDrive, false, false))
	}
	if s.LayerDrive != "" {
		drives = append(drives, drive(LayerDriveID, s.LayerDrive, false, false))
	}
	var ifaces sdk.NetworkInterfaces
	if s.TAP != "" {
		ifaces = sdk.NetworkInterfaces{{
			StaticConfiguration: &sdk.StaticNetworkConfiguration{
				MacAddress:  s.MAC,
				HostDevName: s.TAP,
			},
		}}
	}
	return sdk.Config{
		VMID:              s.ID,
		SocketPath:        s.Socket,
		LogPath:           s.VMMLogPath(),
		LogLevel:          vmmLogLevel,
		KernelImagePath:   s.Kernel,
		InitrdPath:        s.Initrd,
		KernelArgs:        BootArgs(s),
		Drives:            drives,
		NetworkInterfaces: ifaces,
		MachineCfg: models.MachineConfiguration{
			VcpuCount:  sdk.Int64(int64(s.VCPUs)),
			MemSizeMib: sdk.Int64(int64(s.MemoryMiB)),
		},
		// Firecracker's default seccomp filters stay on: no --no-seccomp.
		Seccomp: sdk.SeccompConfig{Enabled: true},
	}, nil
}

// VMMArgs returns the VMM command line, as the SDK's command builder makes
// it: `<binary> --api-sock <socket> --id <id>`. Start resolves the binary
// to an absolute path first.
func VMMArgs(binary string, cfg sdk.Config) []string {
	b := sdk.VMCommandBuilder{}.
		WithBin(binary).
		WithSocketPath(cfg.SocketPath).
		AddArgs("--id", cfg.VMID)
	return append(append([]string{b.Bin()}, b.SocketPath()...), b.Args()...)
}
