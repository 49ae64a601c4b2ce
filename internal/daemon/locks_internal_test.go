package daemon

import (
	"context"
	"errors"
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
	if _, err := l.await(context.Background(), k, "rm", 20*time.Millisecond, func(op string) { waitedFor = append(waitedFor, op) }); !errors.Is(err, api.ErrConflict) {
		t.Errorf("await past the wait: %v, want a conflict", err)
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
