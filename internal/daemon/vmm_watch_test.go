package daemon_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"banger/internal/api"
	"banger/internal/daemon"
	"banger/internal/daemon/daemontest"
)

// A VMM that dies while vm create waits for SSH ends the create at once
// (not at the SSH timeout), quoting the console's last lines, and leaves
// the VM stopped with nothing running. The same holds for a command that
// waits for the guest of a VM whose VMM dies.
func TestDeadVMMEndsTheWaitForSSH(t *testing.T) {
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	inst.Host.SetConsole([]byte("[    2.1] banger-init: root device /dev/vda did not appear within 10 s\n[    2.2] Kernel panic - not syncing: Attempted to kill init!\n"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	blocked := inst.Host.BlockNext("ssh")
	done := make(chan error, 1)
	go func() {
		_, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "dev", Image: "base", WaitSSH: true}, nil)
		done <- err
	}()
	select {
	case <-blocked:
	case err := <-done:
		t.Fatalf("create ended before waiting for SSH: %v", err)
	}
	v, err := inst.Client.VM(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	inst.Host.KillVMM(v.PID)
	err = <-done
	if err == nil || ctx.Err() != nil {
		t.Fatalf("create with a dead VMM: err = %v, ctx = %v", err, ctx.Err())
	}
	for _, want := range []string{"the VMM exited", "Kernel panic - not syncing", "console.log"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("create's error lacks %q:\n%v", want, err)
		}
	}
	if v, err := inst.Client.VM(ctx, "dev"); err != nil || v.State != "stopped" {
		t.Errorf("vm after its VMM died: %+v, %v", v, err)
	}
	if state := inst.Host.State(); strings.Contains(state, "vmm ") || strings.Contains(state, "tap ") {
		t.Errorf("host after the VMM died:\n%s", state)
	}

	// A command waiting on a running VM's guest.
	if _, err := inst.Client.StartVM(ctx, "dev", false, nil); err != nil {
		t.Fatal(err)
	}
	if v, err = inst.Client.VM(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	blocked = inst.Host.BlockNext("ssh")
	go func() {
		_, err := inst.Client.WaitVM(ctx, "dev", api.WaitVMRequest{TimeoutSeconds: 60})
		done <- err
	}()
	<-blocked
	inst.Host.KillVMM(v.PID)
	err = <-done
	if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "the VMM exited") || !strings.Contains(err.Error(), "banger vm start dev") {
		t.Errorf("wait on a guest whose VMM died: %v", err)
	}
}

// A create that fails on a full file system says so, with the way out,
// and leaves nothing behind.
func TestCreateOnAFullDiskSaysSoAndLeavesNothing(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	for _, step := range []string{"layer", "workdisk"} {
		inst.Host.FailNext(step, &os.PathError{Op: "write", Path: "/data/banger/vms/x/" + step + ".ext4", Err: syscall.ENOSPC})
		_, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "full", Image: "base", NoStart: true}, nil)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != api.CodeUnavailable || !strings.Contains(ae.Message, "no space left on device") ||
			!strings.Contains(ae.Hint, "is full") || !strings.Contains(ae.Hint, "banger image prune") {
			t.Errorf("create with %s on a full disk: %#v", step, err)
		}
		if vms, _ := inst.Client.VMs(ctx, true); len(vms) != 0 {
			t.Errorf("a create that failed on a full disk left %v", vms)
		}
		if state := inst.Host.State(); state != "" {
			t.Errorf("host after a create that failed on a full disk:\n%s", state)
		}
	}
}

// A guest that never answers while its VMM runs fails the wait at its
// timeout, quoting how far the console got.
func TestWaitTimeoutQuotesTheConsole(t *testing.T) {
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	inst.Host.SetConsole([]byte("[    3.0] banger-init: switching to the root file system\n[    9.9] systemd[1]: Reached target sysinit.target\n"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "dev", Image: "base", WaitSSH: true}, nil); err != nil {
		t.Fatal(err)
	}
	blocked := inst.Host.BlockNext("ssh")
	done := make(chan error, 1)
	go func() {
		_, err := inst.Client.WaitVM(ctx, "dev", api.WaitVMRequest{TimeoutSeconds: 1})
		done <- err
	}()
	<-blocked
	err := <-done
	if err == nil || ctx.Err() != nil {
		t.Fatalf("wait on a guest that never answers: err = %v, ctx = %v", err, ctx.Err())
	}
	for _, want := range []string{"Reached target sysinit.target", "console.log"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the timed-out wait's error lacks %q:\n%v", want, err)
		}
	}
}

// A guest whose console stops while vm create waits for SSH (a kernel hung
// under emulation) is stopped and booted once more; a second stall fails
// the create with the console's last lines, leaving nothing running.
func TestStalledBootIsBootedOnceMore(t *testing.T) {
	inst := daemontest.Start(t, func(cfg *daemon.Config, _ *daemon.Deps) { cfg.Loaded.BootStallTimeout = "300ms" })
	inst.AddImage(t, "base")
	inst.Host.SetConsole([]byte("[    0.715713] sched_clock: Marking stable (693467373, 21045851)->(1001629423, -287116199)\n"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	create := func(name string, stalls int) (error, []string) {
		var notes []string
		var mu sync.Mutex
		blocked := inst.Host.BlockNext("ssh")
		done := make(chan error, 1)
		go func() {
			_, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: name, Image: "base", WaitSSH: true}, func(p api.Progress) {
				mu.Lock()
				defer mu.Unlock()
				notes = append(notes, p.Message)
			})
			done <- err
		}()
		for i := 1; i < stalls; i++ {
			<-blocked
			blocked = inst.Host.BlockNext("ssh")
		}
		err := <-done
		mu.Lock()
		defer mu.Unlock()
		return err, notes
	}
	boots := func() int {
		n := 0
		for _, c := range inst.Host.Calls() {
			if strings.HasPrefix(c, "boot ") {
				n++
			}
		}
		return n
	}

	err, notes := create("once", 1)
	if err != nil {
		t.Fatalf("create after one stall: %v", err)
	}
	if !slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, "stopped booting") }) {
		t.Errorf("the create's progress does not say the boot stalled: %q", notes)
	}
	if n := boots(); n != 2 {
		t.Errorf("%d boots, want 2 (the stalled one and the next)", n)
	}
	if state := inst.Host.State(); strings.Count(state, "vmm ") != 1 {
		t.Errorf("host after the second boot, want one VMM:\n%s", state)
	}

	err, _ = create("twice", 2)
	if err == nil {
		t.Fatal("create after two stalls succeeded")
	}
	for _, want := range []string{"the guest stopped booting", "printed nothing for 300ms", "sched_clock: Marking stable", "console.log"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("create's error lacks %q:\n%v", want, err)
		}
	}
	if n := boots(); n != 4 {
		t.Errorf("%d boots in all, want 4", n)
	}
	if v, err := inst.Client.VM(ctx, "twice"); err != nil || v.State != "stopped" {
		t.Errorf("vm after two stalls: %+v, %v", v, err)
	}
	if state := inst.Host.State(); strings.Count(state, "vmm ") != 1 {
		t.Errorf("host after the failed create, want only the first vm's VMM:\n%s", state)
	}
}
