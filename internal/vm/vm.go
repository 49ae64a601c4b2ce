package vm

import (
	"net/netip"
	"time"
)

// Process identifies a running VMM process. The start time (clock ticks
// since boot, from /proc/PID/stat) guards against pid reuse.
type Process struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
}

// VM is one virtual machine as banger stores it.
type VM struct {
	ID        string
	Name      string
	State     State
	Reason    string // why the VM is in Error, or what the last failure was
	ImageID   string
	ImageName string
	CPUs      int
	MemoryMiB int
	DiskBytes int64 // work disk size
	IP        netip.Addr
	MAC       string
	TAP       string
	Dir       string  // per-VM data directory (disks)
	StateDir  string  // per-VM state directory (logs)
	Socket    string  // VMM API socket path
	Process   Process // zero unless a VMM was started for the VM
	Hidden    bool    // temporary VMs of the image builder
	Layout    Layout  // how the root is made
	// Base is the image's root file system, which a layered VM boots
	// from read-only (read from the image; not stored with the VM).
	Base      string
	CreatedAt time.Time
	StartedAt time.Time // zero unless running
}

// Layout is how a VM's root disk is made.
type Layout string

// The layouts.
const (
	// Clone: the VM has its own copy of the image's root file system
	// (reflinked where the file system can): VMs made before layers, and
	// the image builder's temporary VMs, whose root becomes the image.
	Clone Layout = "clone"
	// Layered: the VM boots the image's root file system read-only,
	// shared with the image's other VMs, with an overlay layer of its own
	// on top (LayerDisk) that holds everything it changes.
	Layered Layout = "layer"
)

// LayoutOrClone is the VM's layout, Clone when none is set.
func (v *VM) LayoutOrClone() Layout {
	if v.Layout == "" {
		return Clone
	}
	return v.Layout
}

// RootDisk is the path of the VM's own copy of its image's root filesystem
// (Clone layout).
func (v *VM) RootDisk() string { return v.Dir + "/root.ext4" }

// LayerDisk is the path of the VM's overlay layer (Layered layout).
func (v *VM) LayerDisk() string { return v.Dir + "/layer.ext4" }

// WritableRoot is the disk that holds what the VM wrote to its root: its
// copy, or its layer.
func (v *VM) WritableRoot() string {
	if v.LayoutOrClone() == Layered {
		return v.LayerDisk()
	}
	return v.RootDisk()
}

// SuspendState is the VMM's device state of a suspended VM.
func (v *VM) SuspendState() string { return v.Dir + "/suspend.state" }

// SuspendMemory is the guest memory of a suspended VM.
func (v *VM) SuspendMemory() string { return v.Dir + "/suspend.mem" }

// WorkDisk is the path of the VM's work disk.
func (v *VM) WorkDisk() string { return v.Dir + "/work.ext4" }

// ConsoleLog is the guest serial console log.
func (v *VM) ConsoleLog() string { return v.StateDir + "/console.log" }

// BootFile holds the daemon's record of the VM's last boot (BootRecord).
func (v *VM) BootFile() string { return v.StateDir + "/boot.json" }

// VMMLog is the VMM's own log.
func (v *VM) VMMLog() string { return v.StateDir + "/vmm.log" }

// Logs lists the log files worth reading when something goes wrong.
func (v *VM) Logs() []string { return []string{v.ConsoleLog(), v.VMMLog()} }

// HoldsVMM reports whether the VM is settled in a state with a live VMM:
// running or paused. It answers to its name and holds its TAP.
func (v *VM) HoldsVMM() bool { return v.State == Running || v.State == Paused }

// Released forgets the VM's VMM process: it no longer runs.
func (v *VM) Released() {
	v.Process = Process{}
	v.StartedAt = time.Time{}
}
