package vm

import (
	"fmt"
	"time"
)

// State is where a VM is in its lifecycle.
type State string

// The lifecycle states. A deleted VM has no row and so no state.
const (
	Creating State = "creating"
	Stopped  State = "stopped"
	Starting State = "starting"
	Running  State = "running"
	Stopping State = "stopping"
	Error    State = "error"
)

// transitions lists, for each state, the states it may move to.
var transitions = map[State][]State{
	Creating: {Stopped, Running, Error},
	Stopped:  {Starting, Error},
	Starting: {Running, Stopped, Error},
	Running:  {Stopping, Stopped, Error},
	Stopping: {Stopped, Error},
	Error:    {Stopped, Starting, Error},
}

// CanTransition reports whether a VM may move from one state to another.
func CanTransition(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Transition checks a state change and returns a user-facing error when the
// change is not allowed.
func Transition(name string, from, to State) error {
	if CanTransition(from, to) {
		return nil
	}
	return fmt.Errorf("vm %s is %s and cannot become %s", name, from, to)
}

// Valid reports whether s is a known state.
func (s State) Valid() bool {
	_, ok := transitions[s]
	return ok
}

// Process identifies a running VMM process. The start time (clock ticks
// since boot, from /proc/PID/stat) guards against pid reuse.
type Process struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
	Socket    string `json:"socket"`
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
	IP        string
	MAC       string
	TAP       string
	Dir       string // per-VM data directory (disks)
	StateDir  string // per-VM state directory (logs)
	Socket    string // VMM API socket path
	Process   Process
	Hidden    bool // temporary VMs of the image builder
	CreatedAt time.Time
	StartedAt time.Time // zero unless running
}

// DNSName is the name the VM answers to.
func (v *VM) DNSName() string { return v.Name + ".vm" }

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
