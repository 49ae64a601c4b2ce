package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"banger/internal/api"
	"banger/internal/vm"
)

// TestCloneOfARunningVM: the source is paused for the snapshot and runs
// again afterwards; the clone is restored from the snapshot onto its own
// TAP and disk copies, re-identified as itself through the source's
// address, and the snapshot files are gone.
func TestCloneOfARunningVM(t *testing.T) {
	ctx := context.Background()
	inst := suspendInstance(t)
	vmIn(t, inst, "dev", vm.Running)
	n := len(inst.Host.Calls())
	c, err := inst.Client.CloneVM(ctx, "dev", "dev2", nil)
	if err != nil {
		t.Fatal(err)
	}
	src, _ := inst.Client.VM(ctx, "dev")
	if c.State != "running" || src.State != "running" || c.IP == src.IP || c.MAC == src.MAC || c.TAP == src.TAP {
		t.Fatalf("clone %+v of %+v: want both running with their own address, MAC and tap", c, src)
	}
	var order []string
	var identity string
	for _, call := range callsSince(inst, n) {
		op, args, _ := strings.Cut(call, " ")
		switch op {
		case "pause", "snapshot-to", "copydisks", "hostkey", "restore-as", "resume":
			order = append(order, call)
		case "exec":
			if strings.Contains(args, "banger-reidentify") {
				order = append(order, "reidentify")
				identity = args
			}
		}
	}
	want := []string{"pause dev", "snapshot-to dev", "copydisks dev dev2", "hostkey dev2", "restore-as dev2 base " + c.IP, "resume dev2", "reidentify", "resume dev"}
	if !slices.Equal(order, want) {
		t.Errorf("clone calls = %q, want %q", order, want)
	}
	for _, w := range []string{" dev2 vm " + c.IP + "/", " " + c.MAC + " "} {
		if !strings.Contains(identity, w) {
			t.Errorf("re-identification %q lacks %q", identity, w)
		}
	}
	v, err := inst.Daemon.Store().VM(ctx, "dev2")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"clone.state", "clone.mem"} {
		if _, err := os.Stat(filepath.Join(v.Dir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left in the clone's directory (%v)", f, err)
		}
	}
}

// TestCloneRefusalsAndFailures: refused clones change nothing; a clone
// that fails at any later step leaves no VM, no TAP, no process, no
// files, and the source as it was.
func TestCloneRefusalsAndFailures(t *testing.T) {
	ctx := context.Background()
	inst := suspendInstance(t)
	vmIn(t, inst, "off", vm.Stopped)
	vmIn(t, inst, "dev", vm.Running)
	if _, err := inst.Client.CloneVM(ctx, "off", "x", nil); !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "banger vm start off") {
		t.Errorf("clone of a stopped vm: %v; want a conflict with the start command", err)
	}
	if _, err := inst.Client.CloneVM(ctx, "dev", "off", nil); !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "vm off already exists") {
		t.Errorf("clone to an existing name: %v", err)
	}
	if _, err := inst.Client.CloneVM(ctx, "dev", "Bad_Name", nil); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("clone to a bad name: %v", err)
	}
	// "exec sh" is the re-identification; the source's clock is set by
	// an exec of date in the background after each clone.
	for _, step := range []string{"snapshot-to", "copydisks", "restore-as", "exec sh", "ssh"} {
		t.Run(step, func(t *testing.T) {
			host := inst.Host.State()
			inst.Host.FailNext(step, errors.New("injected failure"))
			if _, err := inst.Client.CloneVM(ctx, "dev", "dev2", nil); err == nil || !strings.Contains(err.Error(), "injected failure") {
				t.Fatalf("clone with %s failing: %v", step, err)
			}
			if _, err := inst.Client.VM(ctx, "dev2"); !errors.Is(err, api.ErrNotFound) {
				t.Errorf("a failed clone left vm dev2 (%v)", err)
			}
			if v, _ := inst.Client.VM(ctx, "dev"); v.State != "running" {
				t.Errorf("after a failed clone the source is %s, want running", v.State)
			}
			if got := inst.Host.State(); got != host {
				t.Errorf("a failed clone changed the host:\nbefore:\n%s\nafter:\n%s", host, got)
			}
			entries, _ := os.ReadDir(filepath.Dir(inst.Paths.VMDataDir("x")))
			if len(entries) != 2 {
				t.Errorf("vm directories after a failed clone: %d, want the two of off and dev", len(entries))
			}
		})
	}
}

// TestReconcileStopsACloneCutOff: a clone cut off by a crash after its VMM
// started is still creating and may answer as its source; reconcile stops
// it and marks it an error, never adopts it.
func TestReconcileStopsACloneCutOff(t *testing.T) {
	ctx := context.Background()
	inst := suspendInstance(t)
	st := inst.Daemon.Store()
	vmIn(t, inst, "half", vm.Running)
	v, err := st.VM(ctx, "half")
	if err != nil {
		t.Fatal(err)
	}
	pid := v.Process.PID
	v.State = vm.Creating
	if err := st.UpdateVM(ctx, &v); err != nil {
		t.Fatal(err)
	}
	if err := inst.Daemon.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := inst.Client.VM(ctx, "half")
	if err != nil || got.State != "error" || !strings.Contains(got.Reason, "creation was interrupted") || got.PID != 0 {
		t.Fatalf("after reconcile: %+v, %v; want an error without a process", got, err)
	}
	if host := inst.Host.State(); strings.Contains(host, fmt.Sprintf("vmm %d", pid)) || strings.Contains(host, "dns half") || strings.Contains(host, "tap "+got.TAP) {
		t.Errorf("the cut-off clone still holds the host:\n%s", host)
	}
}
