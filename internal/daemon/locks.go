package daemon

import (
	"context"
	"sync"
	"time"

	"banger/internal/api"
)

// lockKind is what an operation lock protects.
type lockKind string

const (
	lockVM    lockKind = "vm"    // a VM, by name
	lockImage lockKind = "image" // an image name, while it is made
	lockBuild lockKind = "build" // a running build or commit, by its id
)

// lockKey names one lockable thing.
type lockKey struct {
	kind lockKind
	name string
}

func vmKey(name string) lockKey    { return lockKey{lockVM, name} }
func imageKey(name string) lockKey { return lockKey{lockImage, name} }
func buildKey(op string) lockKey   { return lockKey{lockBuild, op} }

// locks serializes operations: one at a time per key. A second operation
// fails fast with a conflict that names what holds the lock, or waits for
// it (await).
type locks struct {
	mu   sync.Mutex
	held map[lockKey]*hold
}

// hold is one operation holding a lock; done is closed when it lets go.
type hold struct {
	op   string
	done chan struct{}
}

func newLocks() *locks { return &locks{held: map[lockKey]*hold{}} }

// take locks k for the operation what and returns the unlock function.
func (l *locks) take(k lockKey, what string) (func(), error) {
	unlock, h := l.tryTake(k, what)
	if h != nil {
		return nil, busyError(k, h.op, 0)
	}
	return unlock, nil
}

// tryTake locks k for what, or returns what holds it.
func (l *locks) tryTake(k lockKey, what string) (func(), *hold) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h, ok := l.held[k]; ok {
		return nil, h
	}
	h := &hold{op: what, done: make(chan struct{})}
	l.held[k] = h
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			delete(l.held, k)
			l.mu.Unlock()
			close(h.done)
		})
	}, nil
}

// await locks k for what, waiting up to wait for the operations that hold
// it to let go; waiting is called with each one it waits for. It fails
// with the conflict take gives when wait passes, or when ctx ends.
func (l *locks) await(ctx context.Context, k lockKey, what string, wait time.Duration, waiting func(op string)) (func(), error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		unlock, h := l.tryTake(k, what)
		if h == nil {
			return unlock, nil
		}
		if waiting != nil {
			waiting(h.op)
		}
		select {
		case <-h.done:
		case <-timer.C:
			return nil, busyError(k, h.op, wait)
		case <-ctx.Done():
			return nil, busyError(k, h.op, 0)
		}
	}
}

// busyError is the conflict of an operation that found k held by op,
// after waiting for it when waited is not zero.
func busyError(k lockKey, op string, waited time.Duration) error {
	still := ""
	if waited > 0 {
		still = " still, after waiting " + waited.String()
	}
	return api.Errorf(api.CodeConflict, "%s %s is busy: %s is in progress%s", k.kind, k.name, op, still).
		WithHint("wait for it to finish, then retry")
}

// busy reports whether an operation holds k.
func (l *locks) busy(k lockKey) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.held[k]
	return ok
}
