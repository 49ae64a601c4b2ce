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
	CreatedAt time.Time
	StartedAt time.Time // zero unless running
}

// RootDisk is the path of the VM's own copy of its image's root filesystem.
func (v *VM) RootDisk() string { return v.Dir + "/root.ext4" }

// WorkDisk is the path of the VM's work disk.
func (v *VM) WorkDisk() string { return v.Dir + "/work.ext4" }

// ConsoleLog is the guest serial console log.
func (v *VM) ConsoleLog() string { return v.StateDir + "/console.log" }

// VMMLog is the VMM's own log.
func (v *VM) VMMLog() string { return v.StateDir + "/vmm.log" }

// Logs lists the log files worth reading when something goes wrong.
func (v *VM) Logs() []string { return []string{v.ConsoleLog(), v.VMMLog()} }

// Released forgets the VM's VMM process: it no longer runs.
func (v *VM) Released() {
	v.Process = Process{}
	v.StartedAt = time.Time{}
}
