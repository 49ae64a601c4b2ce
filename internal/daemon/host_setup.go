package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"sync"

	"banger/internal/allocation"
	"banger/internal/config"
	"banger/internal/privhelper"
)

// hostSetup is this daemon's share of the host's networking: its
// allocation and the plumbing that changes it (in-process as root, the
// privileged helper through sudo otherwise). A user who was not set up
// gets a daemon that lists and explains, with err naming the fix.
type hostSetup struct {
	alloc allocation.Allocation
	plumb privhelper.Plumbing // nil when err is set
	err   error
	root  bool

	mu      sync.Mutex
	checked bool // the helper answered once: sudo and the record work
}

// newHostSetup reads the allocation of the daemon's user.
func newHostSetup(cfg *config.Loaded, log *slog.Logger) *hostSetup {
	uid := os.Geteuid()
	h := &hostSetup{root: uid == 0}
	name := fmt.Sprint(uid)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	alloc, err := allocation.Registry{}.ForConfig(cfg, name, uid)
	if err != nil {
		h.err = fmt.Errorf("reading the network allocation of %s: %w", name, err)
		log.Warn("no network allocation: vms cannot run until it is fixed", "err", h.err)
		return h
	}
	h.alloc = alloc
	if h.plumb, err = privhelper.For(alloc, uid, "", log.With("component", "plumbing")); err != nil {
		h.err = err
	}
	return h
}

// check says whether the plumbing can work. The helper is asked once per
// daemon (about 14 ms through sudo), then trusted, unless fresh asks
// again (the doctor does).
func (h *hostSetup) check(ctx context.Context, fresh bool) error {
	if h.err != nil {
		return h.err
	}
	if h.root {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.checked && !fresh {
		return nil
	}
	if err := h.plumb.CheckSetup(ctx); err != nil {
		h.checked = false
		return err
	}
	h.checked = true
	return nil
}
