package qemuvmm

import (
	"fmt"
	"strconv"
	"strings"
)

// TBSizeMiB bounds QEMU's TCG translation cache. Measured for a 512 MiB
// guest: RSS about 280 MB instead of about 600 MB, for +0.5 s of boot.
const TBSizeMiB = 64

// LaunchConfig is everything the QEMU command line is built from: the
// API-configured machine, resolved into plain values.
type LaunchConfig struct {
	// QEMU is the emulator binary (qemu-system-x86_64 or a path to it).
	QEMU string
	// Name identifies the instance in QEMU (process title, QMP).
	Name string
	// Accel is the acceleration chosen by ProbeAccel.
	Accel Accel
	// VCPUs and MemMiB come from machine-config.
	VCPUs  int64
	MemMiB int64
	// Kernel, Initrd and Cmdline come from boot-source; Cmdline is the
	// final guest command line (see KernelCmdline).
	Kernel  string
	Initrd  string
	Cmdline string
	// Drives in guest order: the root drive first, then the others in the
	// order they were first configured, as Firecracker attaches them.
	Drives []LaunchDrive
	// NICs in the order they were first configured.
	NICs []LaunchNIC
	// QMPSocket is the path of the QMP control socket QEMU listens on.
	QMPSocket string
	// RAMPath, when set, backs guest RAM with that file, mapped shared
	// (memory-backend-file,share=on). banger-vmm-qemu passes a memfd it
	// holds itself (/proc/self/fd/3), so that a snapshot can copy the RAM
	// and migration can leave it out (x-ignore-shared).
	RAMPath string
	// Incoming starts QEMU waiting for a migration stream (-incoming
	// defer) instead of booting: the start of a snapshot load.
	Incoming bool
}

// LaunchDrive is one virtio-blk device.
type LaunchDrive struct {
	// Node is the QEMU block id (drive0, drive1, …); the API's drive_id is
	// kept by the server.
	Node     string
	Path     string
	ReadOnly bool
	// Cache is QEMU's cache mode: "unsafe" for Firecracker's Unsafe (flush
	// requests are not forwarded to the host disk), "writeback" otherwise.
	Cache string
}

// LaunchNIC is one virtio-net device on a host TAP.
type LaunchNIC struct {
	// Netdev is the QEMU netdev id (net0, net1, …).
	Netdev string
	Tap    string
	MAC    string
}

// BuildArgv returns the QEMU command line for c. The guest console is the
// ISA serial port, wired to QEMU's standard output, which is this process's
// standard output, as with Firecracker.
func BuildArgv(c LaunchConfig) []string {
	argv := []string{
		c.QEMU,
		"-name", "guest=" + qemuEscape(c.Name),
	}
	machine := "microvm,acpi=on,x-option-roms=off"
	if c.RAMPath != "" {
		machine += ",memory-backend=ram"
	}
	argv = append(argv, "-M", machine)
	switch c.Accel.Kind {
	case AccelKVM:
		argv = append(argv, "-accel", "kvm", "-cpu", "host")
	default:
		argv = append(argv, "-accel", "tcg,tb-size="+strconv.Itoa(TBSizeMiB))
	}
	argv = append(argv,
		"-m", strconv.FormatInt(c.MemMiB, 10)+"M",
		"-smp", strconv.FormatInt(c.VCPUs, 10),
	)
	if c.RAMPath != "" {
		argv = append(argv, "-object", "memory-backend-file,id=ram,size="+strconv.FormatInt(c.MemMiB, 10)+"M,share=on,mem-path="+qemuEscape(c.RAMPath))
	}
	argv = append(argv,
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-chardev", "stdio,id=console,signal=off",
		"-serial", "chardev:console",
		"-kernel", c.Kernel,
	)
	if c.Initrd != "" {
		argv = append(argv, "-initrd", c.Initrd)
	}
	argv = append(argv, "-append", c.Cmdline)
	for _, d := range c.Drives {
		opts := []string{
			"id=" + d.Node,
			"file=" + qemuEscape(d.Path),
			"format=raw", "if=none",
			"cache=" + d.Cache,
			// Like Firecracker, no image locks: the daemon decides who uses
			// a disk, and a clone's snapshot load opens the disks of a VM
			// that still runs until PATCH /drives moves it to its copies.
			"file.locking=off",
		}
		if d.ReadOnly {
			opts = append(opts, "readonly=on")
		}
		argv = append(argv,
			"-drive", strings.Join(opts, ","),
			"-device", "virtio-blk-device,drive="+d.Node)
	}
	for _, n := range c.NICs {
		argv = append(argv,
			"-netdev", "tap,id="+n.Netdev+",ifname="+n.Tap+",script=no,downscript=no")
		dev := "virtio-net-device,netdev=" + n.Netdev
		if n.MAC != "" {
			dev += ",mac=" + n.MAC
		}
		argv = append(argv, "-device", dev)
	}
	if c.Accel.Kind != AccelKVM {
		// TCG's CPU has no RDRAND: without an entropy source the guest
		// kernel's random pool takes seconds to initialise, and sshd
		// waits for it. Under KVM the host CPU's RDRAND seeds it at once.
		argv = append(argv, "-object", "rng-builtin,id=rng0", "-device", "virtio-rng-device,rng=rng0")
	}
	argv = append(argv, "-qmp", "unix:"+qemuEscape(c.QMPSocket)+",server=on,wait=off")
	if c.Incoming {
		argv = append(argv, "-S", "-incoming", "defer")
	}
	return argv
}

// KernelCmdline returns the guest command line for the boot-source
// arguments. Like Firecracker it appends the root device when a root drive
// is configured (root=/dev/vda, or root=PARTUUID=… when a partuuid is
// given, with ro or rw); the last root= wins in Linux. Under TCG it appends
// the host TSC frequency and tsc=reliable: TCG's TSC runs at the host's
// rate, and without them about 8% of boots hang in TSC calibration.
func KernelCmdline(bootArgs string, root *Drive, accel Accel) string {
	args := strings.Fields(bootArgs)
	if root != nil {
		dev := "/dev/vda"
		if root.Partuuid != "" {
			dev = "PARTUUID=" + root.Partuuid
		}
		mode := "rw"
		if root.IsReadOnly != nil && *root.IsReadOnly {
			mode = "ro"
		}
		args = append(args, "root="+dev, mode)
	}
	if accel.Kind == AccelTCG {
		if accel.TSCKHz > 0 {
			args = append(args, fmt.Sprintf("tsc_early_khz=%d", accel.TSCKHz))
		}
		args = append(args, "tsc=reliable")
	}
	return strings.Join(args, " ")
}

// qemuEscape doubles commas, QEMU's escape inside option values.
func qemuEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }
