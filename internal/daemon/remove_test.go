package daemon_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"banger/internal/api"
	"banger/internal/daemon/daemontest"
)

// vm rm --force waits for an operation that holds the VM (here a start
// waiting for SSH, as one an interrupted command left running would) to
// end, says what it waits for, and then removes the VM and all it held.
// A plain rm is refused at once.
func TestForceRemoveWaitsOutAnOperationInProgress(t *testing.T) {
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "dev", Image: "base", NoStart: true}, nil); err != nil {
		t.Fatal(err)
	}

	startCtx, endStart := context.WithCancel(ctx)
	defer endStart()
	blocked := inst.Host.BlockNext("ssh")
	started := make(chan error, 1)
	go func() {
		_, err := inst.Client.StartVM(startCtx, "dev", true, nil)
		started <- err
	}()
	select {
	case <-blocked:
	case err := <-started:
		t.Fatalf("start ended before waiting for SSH: %v", err)
	}

	if err := inst.Client.RemoveVM(ctx, "dev", api.RemoveVMRequest{}); !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "start is in progress") {
		t.Errorf("rm of a vm being started: %v, want a conflict naming the start", err)
	}

	waiting := make(chan string, 1)
	removed := make(chan error, 1)
	go func() {
		removed <- inst.Client.RemoveVMWithProgress(ctx, "dev", api.RemoveVMRequest{Force: true}, func(p api.Progress) {
			if p.Step == api.StepWait {
				select {
				case waiting <- p.Message:
				default:
				}
			}
		})
	}()
	select {
	case msg := <-waiting:
		if !strings.Contains(msg, "start") || !strings.Contains(msg, "dev") {
			t.Errorf("rm --force waits saying %q, want the operation and the vm named", msg)
		}
	case err := <-removed:
		t.Fatalf("rm --force ended while the start held the vm: %v", err)
	}
	if _, err := inst.Client.VM(ctx, "dev"); err != nil {
		t.Fatalf("the vm went before the start in progress ended: %v", err)
	}

	endStart() // the start's client goes away: the start ends
	if err := <-started; err == nil {
		t.Error("the interrupted start succeeded")
	}
	if err := <-removed; err != nil {
		t.Fatalf("rm --force after the start ended: %v", err)
	}
	if _, err := inst.Client.VM(ctx, "dev"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("after rm --force the vm is still there: %v", err)
	}
	if state := inst.Host.State(); state != "" {
		t.Errorf("host after rm --force:\n%s", state)
	}
}
