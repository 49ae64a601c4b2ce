package daemon

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"banger/internal/api"
)

// await gives up with take's conflict when the holder keeps the lock past
// the wait or the caller goes away, and takes the lock once it is let go.
func TestAwaitGivesUpOrTakesTheLock(t *testing.T) {
	l := newLocks()
	k := vmKey("dev")
	unlock, err := l.take(k, "suspend")
	if err != nil {
		t.Fatal(err)
	}
	var waitedFor []string
	if _, err := l.await(context.Background(), k, "rm", 20*time.Millisecond, func(op string) { waitedFor = append(waitedFor, op) }); !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "suspend is in progress still, after waiting 20ms") {
		t.Errorf("await past the wait: %v, want a conflict naming the suspend and the wait", err)
	}
	if len(waitedFor) != 1 || waitedFor[0] != "suspend" {
		t.Errorf("await waited for %q, want the suspend once", waitedFor)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.await(ctx, k, "rm", time.Minute, nil); !errors.Is(err, api.ErrConflict) {
		t.Errorf("await with its caller gone: %v, want a conflict", err)
	}

	got := make(chan error, 1)
	go func() {
		un, err := l.await(context.Background(), k, "rm", time.Minute, nil)
		if err == nil {
			defer un()
			if !l.busy(k) {
				err = errors.New("the lock is not held after await")
			}
		}
		got <- err
	}()
	time.Sleep(10 * time.Millisecond)
	unlock()
	if err := <-got; err != nil {
		t.Errorf("await once the holder let go: %v", err)
	}
	if l.busy(k) {
		t.Error("the lock is still held after await's unlock")
	}
}

// An unlock called twice (a failure path and a deferred one, say) lets go
// once: it neither panics nor releases the next holder's lock.
func TestUnlockTwiceLetsGoOnce(t *testing.T) {
	l := newLocks()
	k := vmKey("dev")
	first, err := l.take(k, "stop")
	if err != nil {
		t.Fatal(err)
	}
	first()
	second, err := l.take(k, "start")
	if err != nil {
		t.Fatalf("take after unlock: %v", err)
	}
	defer second()
	first()
	if _, err := l.take(k, "rm"); !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "start is in progress") {
		t.Errorf("take while the start holds the lock, after the stop's second unlock: %v, want a conflict naming the start", err)
	}
}
