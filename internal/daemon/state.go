package daemon

import (
	"context"
	"errors"

	"banger/internal/api"
	"banger/internal/store"
	"banger/internal/vm"
)

// setState is the one path that changes a VM's state: it checks the
// transition table, writes the row once (with whatever else the caller
// changed on v) and publishes one event.
func (d *Daemon) setState(ctx context.Context, v *vm.VM, to vm.State, reason string) error {
	if err := vm.Transition(v.Name, v.State, to); err != nil {
		return api.Errorf(api.CodeConflict, "%v", err)
	}
	from, was := v.State, v.Reason
	v.State, v.Reason = to, reason
	if err := d.store.UpdateVM(ctx, v); err != nil {
		v.State, v.Reason = from, was
		return err
	}
	d.events.publish(api.Event{Type: stateEvent(to), Name: v.Name, VM: d.toAPI(v)})
	return nil
}

// stateEvent is the event that announces a VM entering state s.
func stateEvent(s vm.State) string {
	switch s {
	case vm.Running:
		return api.EventVMStarted
	case vm.Stopped:
		return api.EventVMStopped
	case vm.Error:
		return api.EventVMError
	}
	return api.EventVMUpdated
}

// saveVM writes a change to v that keeps its state, and announces it.
func (d *Daemon) saveVM(ctx context.Context, v *vm.VM) error {
	if err := d.store.UpdateVM(ctx, v); err != nil {
		return err
	}
	d.events.publish(api.Event{Type: api.EventVMUpdated, Name: v.Name, VM: d.toAPI(v)})
	return nil
}

// admit checks that op may run on v in its state. It returns noop when v
// is already where op would take it, and a conflict naming the state and
// the way out when op is not allowed.
func admit(op vm.Op, v *vm.VM) (noop bool, err error) {
	noop, err = vm.Check(op, v.Name, v.State)
	var oe *vm.OpError
	if errors.As(err, &oe) {
		e := api.Errorf(api.CodeConflict, "%s", oe.Error())
		if oe.Hint != "" {
			e = e.WithHint("%s", oe.Hint)
		}
		return false, e
	}
	return noop, err
}

// lockAndLoad takes a VM's operation lock for op, reads the VM and checks
// that op may run in its state; the caller releases the lock with unlock.
// noop says the VM is already where op would take it.
func (d *Daemon) lockAndLoad(ctx context.Context, name string, op vm.Op) (v *vm.VM, unlock func(), noop bool, err error) {
	unlock, err = d.locks.take(vmKey(name), string(op))
	if err != nil {
		return nil, nil, false, err
	}
	if v, err = d.loadVM(ctx, name); err == nil {
		noop, err = admit(op, v)
	}
	if err != nil {
		unlock()
		return nil, nil, false, err
	}
	return v, unlock, noop, nil
}

// loadVM reads the VM called name.
func (d *Daemon) loadVM(ctx context.Context, name string) (*vm.VM, error) {
	v, err := d.store.VM(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFoundVM(name)
	}
	if err != nil {
		return nil, err
	}
	return &v, nil
}
