package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"banger/internal/api"
	"banger/internal/daemon"
	"banger/internal/daemon/daemontest"
	"banger/internal/vm"
)

// vmIn makes a VM through the API and puts it into state s the way a real
// daemon gets there: a running VM keeps its VMM for the transitional
// states, which are left behind as a crash would leave them.
func vmIn(t *testing.T, inst *daemontest.Instance, name string, s vm.State) {
	t.Helper()
	ctx := context.Background()
	boot := s == vm.Running || s == vm.Starting || s == vm.Stopping || s == vm.Paused
	if _, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: name, Image: "base", NoStart: !boot}, nil); err != nil {
		t.Fatal(err)
	}
	if s == vm.Running || s == vm.Stopped {
		return
	}
	st := inst.Daemon.Store()
	v, err := st.VM(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	v.State = s
	if s == vm.Error {
		v.Reason = "something went wrong"
	}
	if s == vm.Suspended {
		// A suspended VM owns its saved state.
		for _, p := range []string{v.SuspendState(), v.SuspendMemory()} {
			if err := os.WriteFile(p, []byte("saved"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := st.UpdateVM(ctx, &v); err != nil {
		t.Fatal(err)
	}
}

// runOp runs op on the VM through the API, as the CLI would.
func runOp(ctx context.Context, c *api.Client, op vm.Op, name string) error {
	var err error
	switch op {
	case vm.OpStart:
		_, err = c.StartVM(ctx, name, true, nil)
	case vm.OpStop:
		_, err = c.StopVM(ctx, name, api.StopVMRequest{}, nil)
	case vm.OpKill:
		_, err = c.KillVM(ctx, name)
	case vm.OpRestart:
		_, err = c.RestartVM(ctx, name, true, nil)
	case vm.OpRemove:
		err = c.RemoveVM(ctx, name, api.RemoveVMRequest{})
	case vm.OpForceRemove:
		err = c.RemoveVM(ctx, name, api.RemoveVMRequest{Force: true})
	case vm.OpResize:
		_, err = c.ResizeVM(ctx, name, api.ResizeVMRequest{DiskBytes: 16 << 30}, nil)
	case vm.OpCommit:
		_, err = c.CommitImage(ctx, api.CommitImageRequest{Name: "from-" + name, VM: name}, nil)
	case vm.OpPause:
		_, err = c.PauseVM(ctx, name)
	case vm.OpResume:
		_, err = c.ResumeVM(ctx, name)
	case vm.OpSuspend:
		_, err = c.SuspendVM(ctx, name, nil)
	case vm.OpClone:
		_, err = c.CloneVM(ctx, name, name+"-clone", nil)
	default:
		err = fmt.Errorf("no api call for %s", op)
	}
	return err
}

// wantAfter is the state each operation leaves an admitted VM in ("" for
// removed); one it does not name is left as it was (a clone's source).
var wantAfter = map[vm.Op]vm.State{
	vm.OpStart: vm.Running, vm.OpStop: vm.Stopped, vm.OpKill: vm.Stopped, vm.OpRestart: vm.Running,
	vm.OpRemove: "", vm.OpForceRemove: "",
	vm.OpPause: vm.Paused, vm.OpResume: vm.Running, vm.OpSuspend: vm.Suspended,
}

// TestEveryOperationInEveryState walks the operation table: each
// operation the table admits in a state succeeds and leaves the VM where
// it should; each it forbids is refused with a conflict naming the VM and
// its state, and changes neither the VM's row nor the host.
func TestEveryOperationInEveryState(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, func(c *daemon.Config, _ *daemon.Deps) { c.ReconcileInterval = "1h" })
	inst.AddImage(t, "base")
	st := inst.Daemon.Store()
	n := 0
	for _, op := range vm.Ops() {
		for _, s := range vm.States() {
			n++
			name := fmt.Sprintf("vm%d", n)
			t.Run(string(op)+" when "+string(s), func(t *testing.T) {
				vmIn(t, inst, name, s)
				before, _ := st.VM(ctx, name)
				host := inst.Host.State()
				noop, refusal := vm.Check(op, name, s)
				err := runOp(ctx, inst.Client, op, name)
				after, rerr := st.VM(ctx, name)
				if refusal != nil {
					if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), string(s)) {
						t.Fatalf("%s of a %s vm: err = %v, want a conflict naming the vm and its state", op, s, err)
					}
					if diff := cmp.Diff(before, after, cmpopts.EquateComparable(netip.Addr{})); rerr != nil || diff != "" {
						t.Errorf("refused %s changed the vm (%v):\n%s", op, rerr, diff)
					}
					if got := inst.Host.State(); got != host {
						t.Errorf("refused %s changed the host:\nbefore:\n%s\nafter:\n%s", op, host, got)
					}
					return
				}
				if err != nil {
					t.Fatalf("%s of a %s vm: %v", op, s, err)
				}
				want, ok := wantAfter[op]
				switch {
				case noop || !ok:
					want = s
				case want == "":
					if rerr == nil {
						t.Errorf("vm still recorded after %s: %+v", op, after)
					}
					return
				}
				if rerr != nil || after.State != want {
					t.Errorf("after %s of a %s vm: state %q (%v), want %q", op, s, after.State, rerr, want)
				}
				if op == vm.OpResize && after.DiskBytes != 16<<30 {
					t.Errorf("resize left the work disk at %d bytes", after.DiskBytes)
				}
				if op == vm.OpCommit {
					if _, err := inst.Client.Image(ctx, "from-"+name); err != nil {
						t.Errorf("commit made no image: %v", err)
					}
				}
			})
		}
	}
}

// TestReconcileOfAnInterruptedCreateWritesAndAnnouncesOnce: a VM left
// creating by a crash becomes an error in one write and one event.
func TestReconcileOfAnInterruptedCreateWritesAndAnnouncesOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	inst := daemontest.Start(t, func(c *daemon.Config, _ *daemon.Deps) { c.ReconcileInterval = "1h" })
	img := inst.AddImage(t, "base")
	events := subscribe(ctx, t, inst)
	st := inst.Daemon.Store()
	id := "0123456789"
	half := &vm.VM{ID: id, Name: "half", State: vm.Creating, ImageID: img.ID, CPUs: 1, MemoryMiB: 256, DiskBytes: 1 << 30,
		IP: netip.MustParseAddr("10.213.0.9"), TAP: "bg-" + id, Dir: inst.Paths.VMDataDir(id), StateDir: inst.Paths.VMStateDir(id),
		Socket: inst.Paths.VMSocket(id), CreatedAt: time.Now()}
	if err := st.CreateVM(ctx, half); err != nil {
		t.Fatal(err)
	}
	before, err := st.Changes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := inst.Daemon.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	after, err := st.Changes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after-before != 1 {
		t.Errorf("reconcile wrote %d rows, want 1", after-before)
	}
	var seen []string
	for done := false; !done; {
		select {
		case ev := <-events:
			seen = append(seen, ev.Type+" "+ev.Name)
		case <-time.After(300 * time.Millisecond):
			done = true
		}
	}
	if diff := cmp.Diff([]string{"vm.error half"}, seen); diff != "" {
		t.Errorf("events of reconcile (-want +got):\n%s", diff)
	}
	got, err := st.VM(ctx, "half")
	if err != nil || got.State != vm.Error || !strings.Contains(got.Reason, "interrupted") {
		t.Errorf("interrupted vm after reconcile = %+v, %v", got, err)
	}
}

// TestReconcileOfAnInterruptedStartLeavesItStartable: a VM left starting by
// a crash, whose VMM never got recorded, is stopped with the way to retry.
func TestReconcileOfAnInterruptedStartLeavesItStartable(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, func(c *daemon.Config, _ *daemon.Deps) { c.ReconcileInterval = "1h" })
	inst.AddImage(t, "base")
	vmIn(t, inst, "mid", vm.Stopped)
	st := inst.Daemon.Store()
	v, err := st.VM(ctx, "mid")
	if err != nil {
		t.Fatal(err)
	}
	v.State = vm.Starting
	if err := st.UpdateVM(ctx, &v); err != nil {
		t.Fatal(err)
	}
	if err := inst.Daemon.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := inst.Client.VM(ctx, "mid")
	if err != nil || got.State != "stopped" || !strings.Contains(got.Reason, "interrupted") || !strings.Contains(got.Reason, "banger vm start mid") {
		t.Errorf("vm after an interrupted start = %+v, %v", got, err)
	}
	if _, err := inst.Client.StartVM(ctx, "mid", true, nil); err != nil {
		t.Errorf("starting it again: %v", err)
	}
}

// A VMM killed while it was starting can leave its monitor socket beside
// its API socket after the start's undo removed the sockets; reconcile
// removes the sockets of every VM that has no VMM, and only those.
func TestReconcileRemovesSocketsOfStoppedVMs(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, func(c *daemon.Config, _ *daemon.Deps) { c.ReconcileInterval = "1h" })
	inst.AddImage(t, "base")
	vmIn(t, inst, "off", vm.Stopped)
	if _, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "on", Image: "base"}, nil); err != nil {
		t.Fatal(err)
	}
	st := inst.Daemon.Store()
	sockets := map[string]string{}
	for _, name := range []string{"off", "on"} {
		v, err := st.VM(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		sockets[name] = v.Socket + ".qmp"
		if err := os.MkdirAll(filepath.Dir(v.Socket), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(sockets[name], nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := inst.Daemon.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sockets["off"]); !os.IsNotExist(err) {
		t.Errorf("a stopped vm's monitor socket survived reconcile: %v", err)
	}
	if _, err := os.Stat(sockets["on"]); err != nil {
		t.Errorf("reconcile removed a running vm's monitor socket: %v", err)
	}
}

// TestLayouts: a VM gets the layout the disk layer makes (here a layer over
// the shared image); the image builder's VM takes a copy; committing a
// layered VM flattens it.
func TestLayouts(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, nil)
	img := inst.AddImage(t, "base")
	v, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "dev", Image: "base", NoStart: true, RootBytes: 4 << 30}, nil)
	if err != nil || v.Layout != "layer" || !strings.HasSuffix(v.RootDisk, "/layer.ext4") {
		t.Fatalf("created vm = %+v, %v", v, err)
	}
	calls := strings.Join(inst.Host.Calls(), "\n")
	if !strings.Contains(calls, "layer dev 4G") || strings.Contains(calls, "clone dev") || strings.Contains(calls, "growroot") {
		t.Errorf("a layered create made %q", calls)
	}
	got, err := inst.Daemon.Store().VM(ctx, "dev")
	if err != nil || got.Layout != vm.Layered || got.Base != img.Rootfs {
		t.Errorf("stored layout %q base %q (%v), want a layer over %s", got.Layout, got.Base, err, img.Rootfs)
	}
	if _, err := inst.Client.CommitImage(ctx, api.CommitImageRequest{Name: "flat", VM: "dev"}, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(inst.Host.Calls(), "\n"), "commitroot-flatten dev") {
		t.Errorf("commit of a layered vm did not flatten it: %v", inst.Host.Calls())
	}
}

// A vm rm cut off by a daemon crash leaves the row removing, its VMM and
// disks maybe still there; reconcile finishes the removal: no row, no
// VMM, TAP, disk or directory.
func TestReconcileFinishesACutOffRemoval(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, func(c *daemon.Config, _ *daemon.Deps) { c.ReconcileInterval = "1h" })
	inst.AddImage(t, "base")
	vmIn(t, inst, "gone", vm.Running)
	vmIn(t, inst, "kept", vm.Stopped)
	st := inst.Daemon.Store()
	v, err := st.VM(ctx, "gone")
	if err != nil {
		t.Fatal(err)
	}
	v.State = vm.Removing
	if err := st.UpdateVM(ctx, &v); err != nil {
		t.Fatal(err)
	}
	if err := inst.Daemon.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.VM(ctx, "gone"); err == nil {
		t.Error("the removing vm's row survived reconcile")
	}
	if _, err := st.VM(ctx, "kept"); err != nil {
		t.Errorf("reconcile removed another vm: %v", err)
	}
	kept, err := st.VM(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(inst.Host.State(), "\n") {
		if line != "" && !strings.Contains(line, kept.ID) && !strings.Contains(line, "kept") {
			t.Errorf("left on the host after the removal: %s", line)
		}
	}
	for _, dir := range []string{v.Dir, v.StateDir} {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s survived the removal: %v", dir, err)
		}
	}
}
