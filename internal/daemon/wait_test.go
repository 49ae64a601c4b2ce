package daemon_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"banger/internal/api"
	"banger/internal/daemon"
	"banger/internal/daemon/daemontest"
	"banger/internal/vm"
)

func TestWaitForTheGuest(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, func(c *daemon.Config, _ *daemon.Deps) { c.ReconcileInterval = "1h" })
	inst.AddImage(t, "base")
	c := inst.Client

	// A running VM: the daemon checks its SSH server and answers.
	if _, _, err := c.CreateVM(ctx, api.CreateVMRequest{Name: "up", Image: "base"}, nil); err != nil {
		t.Fatal(err)
	}
	before := len(inst.Host.Calls())
	if v, err := c.WaitVM(ctx, "up", api.WaitVMRequest{}); err != nil || v.State != "running" {
		t.Fatalf("wait for a running vm = %+v, %v", v, err)
	}
	if calls := inst.Host.Calls()[before:]; len(calls) != 1 || calls[0] != "ssh up" {
		t.Errorf("wait made calls %v, want one ssh check", calls)
	}

	// A stopped VM: refused with the command that starts it.
	if _, _, err := c.CreateVM(ctx, api.CreateVMRequest{Name: "down", Image: "base", NoStart: true}, nil); err != nil {
		t.Fatal(err)
	}
	_, err := c.WaitVM(ctx, "down", api.WaitVMRequest{})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeConflict || !strings.Contains(ae.Hint, "banger vm start down") {
		t.Errorf("wait for a stopped vm: %v", err)
	}

	// A VM still booting is waited for, and a wait that runs out says so.
	st := inst.Daemon.Store()
	setState := func(name string, s vm.State) {
		v, err := st.VM(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		v.State = s
		if err := st.UpdateVM(ctx, &v); err != nil {
			t.Error(err)
		}
	}
	setState("up", vm.Starting)
	go func() {
		time.Sleep(300 * time.Millisecond)
		setState("up", vm.Running)
	}()
	start := time.Now()
	if _, err := c.WaitVM(ctx, "up", api.WaitVMRequest{TimeoutSeconds: 30}); err != nil {
		t.Errorf("wait for a booting vm: %v", err)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("wait returned after %s, before the vm was up", took)
	}
	setState("up", vm.Starting)
	_, err = c.WaitVM(ctx, "up", api.WaitVMRequest{TimeoutSeconds: 1})
	if !errors.As(err, &ae) || ae.Code != api.CodeUnavailable || !strings.Contains(ae.Message, "to boot") || len(ae.Logs) == 0 {
		t.Errorf("wait that runs out: %v", err)
	}
}
