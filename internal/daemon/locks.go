package daemon

import (
	"sync"

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
// fails fast with a conflict that names what holds the lock.
type locks struct {
	mu   sync.Mutex
	held map[lockKey]string // key → the operation holding it
}

func newLocks() *locks { return &locks{held: map[lockKey]string{}} }

// take locks k for the operation what and returns the unlock function.
func (l *locks) take(k lockKey, what string) (func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if op, ok := l.held[k]; ok {
		return nil, api.Errorf(api.CodeConflict, "%s %s is busy: %s is in progress", k.kind, k.name, op).
			WithHint("wait for it to finish, then retry")
	}
	l.held[k] = what
	return func() {
		l.mu.Lock()
		delete(l.held, k)
		l.mu.Unlock()
	}, nil
}

// busy reports whether an operation holds k.
func (l *locks) busy(k lockKey) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.held[k]
	return ok
}
