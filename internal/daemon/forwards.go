package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"banger/internal/api"
	"banger/internal/forward"
	"banger/internal/store"
	"banger/internal/vm"
)

// forwards are the listeners of the running VMs' port forwards, one
// forward.Forwarder per VM. The database says which forwards a VM has;
// they run while it does.
type forwards struct {
	mu   sync.Mutex
	byVM map[string]*forward.Forwarder // by VM id
}

func specOf(f vm.Forward) forward.Spec {
	return forward.Spec{HostAddr: f.HostAddr, HostPort: f.HostPort, GuestPort: f.GuestPort, Proto: forward.Proto(f.Proto)}
}

func forwardOf(vmID string, s forward.Spec) vm.Forward {
	return vm.Forward{VMID: vmID, Proto: string(s.Proto), HostAddr: s.HostAddr, HostPort: s.HostPort, GuestPort: s.GuestPort}
}

// forwarder returns v's forwarder, making it when create is set.
func (d *Daemon) forwarder(v *vm.VM, create bool) *forward.Forwarder {
	d.fwd.mu.Lock()
	defer d.fwd.mu.Unlock()
	f := d.fwd.byVM[v.ID]
	if f == nil && create {
		f = forward.New(v.IP, forward.Options{Log: d.log.With("vm", v.Name)})
		d.fwd.byVM[v.ID] = f
	}
	return f
}

// startForwards starts the recorded forwards of a running VM that are not
// running yet. A forward that cannot start (its port was taken meanwhile)
// does not stop the VM: the error names it, and the forward stays recorded
// for the next start.
func (d *Daemon) startForwards(ctx context.Context, v *vm.VM) error {
	recorded, err := d.store.Forwards(ctx, v.ID)
	if err != nil || len(recorded) == 0 {
		return err
	}
	f := d.forwarder(v, true)
	running := map[string]bool{}
	for _, s := range f.Specs() {
		running[s.String()] = true
	}
	var errs []error
	for _, r := range recorded {
		if s := specOf(r); !running[s.String()] {
			errs = append(errs, f.Start(s))
		}
	}
	return errors.Join(errs...)
}

// closeForwards closes every VM's listeners: the daemon is going away.
func (d *Daemon) closeForwards() {
	d.fwd.mu.Lock()
	all := d.fwd.byVM
	d.fwd.byVM = map[string]*forward.Forwarder{}
	d.fwd.mu.Unlock()
	for _, f := range all {
		_ = f.Close()
	}
}

// stopForwards closes a VM's listeners and their connections.
func (d *Daemon) stopForwards(v *vm.VM) {
	d.fwd.mu.Lock()
	f := d.fwd.byVM[v.ID]
	delete(d.fwd.byVM, v.ID)
	d.fwd.mu.Unlock()
	if f != nil {
		_ = f.Close()
	}
}

func (d *Daemon) handleForwards(w http.ResponseWriter, r *http.Request) {
	var req api.ForwardsRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	v, err := d.changeForwards(r.Context(), r.PathValue("name"), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d.toAPI(v))
}

// changeForwards records and starts (on a running VM) the forwards to add,
// and stops and forgets the ones to remove. Every spec is checked before
// anything changes; a forward whose port cannot be bound is not recorded.
func (d *Daemon) changeForwards(ctx context.Context, name string, req api.ForwardsRequest) (*vm.VM, error) {
	add, err := parseSpecs(req.Add)
	if err != nil {
		return nil, err
	}
	remove, err := parseSpecs(req.Remove)
	if err != nil {
		return nil, err
	}
	unlock, err := d.locks.take(vmKey(name), "forward")
	if err != nil {
		return nil, err
	}
	defer unlock()
	v, err := d.loadVM(ctx, name)
	if err != nil {
		return nil, err
	}
	for _, s := range remove {
		if err := d.store.RemoveForward(ctx, forwardOf(v.ID, s)); errors.Is(err, store.ErrNotFound) {
			return nil, api.Errorf(api.CodeNotFound, "vm %s has no forward %s", v.Name, s).WithHint("`banger vm show %s` lists its forwards", v.Name)
		} else if err != nil {
			return nil, err
		}
		if f := d.forwarder(v, false); f != nil {
			f.Stop(s)
		}
	}
	for _, s := range add {
		if err := d.addForward(ctx, v, s); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// addForward starts s first when v runs, so a port that cannot be bound is
// refused before it is recorded.
func (d *Daemon) addForward(ctx context.Context, v *vm.VM, s forward.Spec) error {
	running := v.HoldsVMM()
	if running {
		if err := d.forwarder(v, true).Start(s); err != nil {
			return api.Errorf(api.CodeConflict, "%v", err)
		}
	}
	err := d.store.AddForward(ctx, forwardOf(v.ID, s))
	if err == nil {
		return nil
	}
	if running {
		d.forwarder(v, true).Stop(s)
	}
	if errors.Is(err, store.ErrExists) {
		return api.Errorf(api.CodeConflict, "%s is already forwarded (by this or another vm)", s.HostAddrPort()).
			WithHint("`banger vm list` shows the forwards; pick another host port")
	}
	return err
}

func parseSpecs(in []string) ([]forward.Spec, error) {
	var out []forward.Spec
	for _, raw := range in {
		s, err := forward.ParseSpec(raw)
		if err != nil {
			return nil, api.Errorf(api.CodeInvalid, "%v", err).WithHint("write forwards as [ADDR:]HOSTPORT:GUESTPORT[/udp], e.g. 8080:80")
		}
		out = append(out, s)
	}
	return out, nil
}

// forwardStrings renders the recorded forwards per VM id, for listings.
func (d *Daemon) forwardStrings(ctx context.Context, vmID string) (map[string][]string, error) {
	all, err := d.store.Forwards(ctx, vmID)
	if err != nil {
		return nil, fmt.Errorf("reading forwards: %w", err)
	}
	out := map[string][]string{}
	for _, f := range all {
		out[f.VMID] = append(out[f.VMID], specOf(f).String())
	}
	return out, nil
}
