package vm

import (
	"fmt"
	"strings"
)

// State is where a VM is in its lifecycle.
type State string

// The lifecycle states. A deleted VM has no row and so no state. Starting,
// stopping and creating are stored while an operation works, so that a
// crash leaves a state that says what was cut off.
const (
	Creating State = "creating"
	Stopped  State = "stopped"
	Starting State = "starting"
	Running  State = "running"
	Stopping State = "stopping"
	// Paused: the VMM runs, the guest's vCPUs do not; its memory stays
	// where it is.
	Paused State = "paused"
	// Suspended: no VMM runs; the guest's device state and memory are in
	// the VM's directory (vm.SuspendState, vm.SuspendMemory) and the next
	// start resumes them.
	Suspended State = "suspended"
	Error     State = "error"
	// Removing is stored before vm rm touches anything, so a removal cut
	// off by a crash is finished by reconcile rather than leaving a row
	// whose disks are gone.
	Removing State = "removing"
)

// States lists every state, in lifecycle order.
func States() []State {
	return []State{Creating, Stopped, Starting, Running, Stopping, Paused, Suspended, Error, Removing}
}

// transitions lists, for each state, the states it may move to. This table
// is the state diagram of docs/architecture.md; the daemon's one state
// path (setState) refuses every change it does not list.
var transitions = map[State][]State{
	// Every state may be left for removing, which vm rm (or reconcile,
	// after a crash) finishes by deleting the row.
	// A VM being made ends stopped (--no-start), goes on to boot, or is
	// marked an error by a reconcile that finds its creation cut off.
	Creating: {Stopped, Starting, Error, Removing},
	Stopped:  {Starting, Error, Removing},
	// A boot that fails leaves the VM stopped with the reason; a resume
	// from a suspend that fails leaves it suspended.
	Starting: {Running, Stopped, Suspended, Error, Removing},
	// A VMM that exits on its own goes straight to stopped. Pause and
	// suspend go through paused.
	Running: {Stopping, Stopped, Paused, Error, Removing},
	// Reconcile adopts a VMM that still runs after a stop was cut off.
	Stopping: {Stopped, Running, Error, Removing},
	// A paused VM resumes, is suspended (its VMM saved and gone), or is
	// stopped.
	Paused: {Running, Suspended, Stopping, Stopped, Error, Removing},
	// A suspended VM resumes through a start, or its saved state is
	// discarded by a stop (or found missing by reconcile).
	Suspended: {Starting, Stopped, Error, Removing},
	// An error is left by starting again, stopping (which first kills
	// a VMM that may still run), or adoption of a live VMM.
	Error: {Stopped, Starting, Stopping, Running, Paused, Error, Removing},
	// A removal that fails is an error naming what is left.
	Removing: {Error},
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

// Transition checks a state change and returns an error naming the VM and
// both states when the change is not allowed.
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

// Op is an operation a user runs on an existing VM.
type Op string

// The operations on an existing VM. Create has no row to check; building an
// image runs create, stop and rm on a temporary VM.
const (
	OpStart       Op = "start"
	OpStop        Op = "stop"
	OpKill        Op = "kill"
	OpRestart     Op = "restart"
	OpRemove      Op = "rm"
	OpForceRemove Op = "rm --force"
	OpResize      Op = "resize"
	OpCommit      Op = "commit"
	OpPause       Op = "pause"
	OpResume      Op = "resume"
	OpSuspend     Op = "suspend"
	OpClone       Op = "clone"
)

// rule says in which states an operation may run, and in which it has
// nothing to do (a start of a running VM succeeds without acting).
type rule struct {
	from []State
	noop []State
	// hint says how to get the VM into a state the operation accepts.
	hint string
}

// rules is the table of operations and states; forbidden pairs are
// refused before anything changes.
var rules = map[Op]rule{
	OpStart:       {from: []State{Stopped, Suspended, Error}, noop: []State{Running}, hint: "a paused vm continues with `banger vm resume %[1]s`; otherwise wait for the operation in progress, or `banger vm rm --force %[1]s`"},
	OpStop:        {from: []State{Running, Paused, Suspended, Error}, noop: []State{Stopped}, hint: "wait for the operation in progress, or `banger vm kill %s`"},
	OpKill:        {from: []State{Running, Paused, Suspended, Error}, noop: []State{Stopped}, hint: "wait for the operation in progress, or `banger vm rm --force %s`"},
	OpRestart:     {from: []State{Running, Stopped, Error}, hint: "wait for the operation in progress, or `banger vm kill %s`"},
	OpRemove:      {from: []State{Stopped, Suspended, Error, Removing}, hint: "stop it first (`banger vm stop %[1]s`) or remove it anyway with `banger vm rm --force %[1]s`"},
	OpForceRemove: {from: States()},
	OpResize:      {from: []State{Stopped, Running}, hint: "the work disk grows while the vm is stopped or running: wait for the operation in progress, or `banger vm stop %s`"},
	OpCommit:      {from: []State{Stopped}, hint: "only a stopped vm's root disk can become an image: `banger vm stop %s` first"},
	OpPause:       {from: []State{Running}, noop: []State{Paused}, hint: "only a running vm can be paused: `banger vm start %s` first"},
	OpResume:      {from: []State{Paused}, noop: []State{Running}, hint: "only a paused vm resumes; a suspended or stopped one starts: `banger vm start %s`"},
	OpSuspend:     {from: []State{Running, Paused}, noop: []State{Suspended}, hint: "only a running or paused vm can be suspended: `banger vm start %s` first"},
	OpClone:       {from: []State{Running, Paused, Suspended}, hint: "only a running, paused or suspended vm can be cloned: `banger vm start %s` first"},
}

// Ops lists every operation of the table.
func Ops() []Op {
	return []Op{OpStart, OpStop, OpKill, OpRestart, OpRemove, OpForceRemove, OpResize, OpCommit, OpPause, OpResume, OpSuspend, OpClone}
}

// OpError is an operation refused in the VM's state.
type OpError struct {
	VM      string
	Op      Op
	State   State
	Allowed []State
	Hint    string
}

func (e *OpError) Error() string {
	allowed := make([]string, len(e.Allowed))
	for i, s := range e.Allowed {
		allowed[i] = string(s)
	}
	return fmt.Sprintf("cannot %s vm %s: it is %s (%s needs it %s)", e.Op, e.VM, e.State, e.Op, strings.Join(allowed, " or "))
}

// Check decides whether op may run on the VM called name in state s. It
// returns noop when the VM is already where op would take it, and an
// *OpError when op is not allowed in s.
func Check(op Op, name string, s State) (noop bool, err error) {
	r, ok := rules[op]
	if !ok {
		return false, fmt.Errorf("unknown vm operation %q", op)
	}
	for _, n := range r.noop {
		if n == s {
			return true, nil
		}
	}
	for _, f := range r.from {
		if f == s {
			return false, nil
		}
	}
	e := &OpError{VM: name, Op: op, State: s, Allowed: r.from}
	if r.hint != "" {
		e.Hint = fmt.Sprintf(r.hint, name)
	}
	return false, e
}
