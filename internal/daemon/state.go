package daemon

import (
	"context"
	"errors"
	"net/netip"

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
	d.namesMu.Lock()
	err := d.store.UpdateVM(ctx, v)
	if err == nil {
		d.syncName(v)
	}
	d.namesMu.Unlock()
	if err != nil {
		v.State, v.Reason = from, was
		return err
	}
	d.events.publish(api.Event{Type: stateEvent(to), Name: v.Name, VM: d.toAPI(v)})
	return nil
}

// syncName makes the VM's DNS record follow its state: a running or
// paused VM answers to its name, any other does not. The caller holds namesMu, so
// that reconcile's rebuild of the records never sees a row and the
// records disagree.
func (d *Daemon) syncName(v *vm.VM) {
	if d.deps.DNS == nil {
		return
	}
	if v.HoldsVMM() && v.IP.IsValid() {
		d.deps.DNS.Set(v.Name, v.IP)
	} else {
		d.deps.DNS.Remove(v.Name)
	}
}

// rebuildNames replaces the DNS records with the running VMs of the
// database, read under namesMu.
func (d *Daemon) rebuildNames(ctx context.Context) (running int, err error) {
	if d.deps.DNS == nil {
		return 0, nil
	}
	d.namesMu.Lock()
	defer d.namesMu.Unlock()
	vms, err := d.store.VMs(ctx)
	if err != nil {
		return 0, err
	}
	records := map[string]netip.Addr{}
	for _, v := range vms {
		if v.HoldsVMM() && v.IP.IsValid() {
			records[v.Name] = v.IP
		}
	}
	d.deps.DNS.Replace(records)
	return len(records), nil
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
	case vm.Paused:
		return api.EventVMPaused
	case vm.Suspended:
		return api.EventVMSuspended
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
	if v, noop, err = d.loadLocked(ctx, name, op, unlock); err != nil {
		return nil, nil, false, err
	}
	return v, unlock, noop, nil
}

// loadLocked loads the VM called name, whose lock the caller took for op,
// and admits op; on failure it unlocks.
func (d *Daemon) loadLocked(ctx context.Context, name string, op vm.Op, unlock func()) (v *vm.VM, noop bool, err error) {
	if v, err = d.loadVM(ctx, name); err == nil {
		noop, err = admit(op, v)
	}
	if err != nil {
		unlock()
		return nil, false, err
	}
	return v, noop, nil
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
