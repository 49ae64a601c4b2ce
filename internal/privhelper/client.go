package privhelper

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"banger/internal/allocation"
	"banger/internal/system"
)

// DefaultPath is where `banger system setup` installs the helper: a
// root-owned directory no user can write, the only program the sudoers
// rule it writes allows.
const DefaultPath = "/usr/local/libexec/banger/banger-helper"

// ErrRefused wraps the helper's refusals (exit status 2): nothing changed.
var ErrRefused = errors.New("the privileged helper refused")

// ErrNoSudo says sudo would not run the helper without a password: setup
// has not run for this user, or its sudoers rule is gone.
var ErrNoSudo = errors.New("sudo does not allow the banger helper")

// Helper is the Plumbing of a bangerd that is not root: each method runs
// `sudo -n -- PATH VERB ARGS…` once. The helper re-reads the user's
// allocation and checks everything itself; Helper only builds argv.
type Helper struct {
	// Path is the installed helper; DefaultPath when empty.
	Path string
	// Runner runs sudo; system.Plain() in production, a fake in tests.
	Runner system.Runner
	alloc  allocation.Allocation
}

var _ Plumbing = (*Helper)(nil)

// NewHelper returns a Helper for allocation a.
func NewHelper(a allocation.Allocation, path string, runner system.Runner) *Helper {
	return &Helper{Path: path, Runner: runner, alloc: a}
}

func (h *Helper) path() string {
	if h.Path == "" {
		return DefaultPath
	}
	return h.Path
}

// Argv returns the command line that runs req through sudo.
func (h *Helper) Argv(req Request) []string {
	return append([]string{"sudo", "-n", "--", h.path()}, req.Argv()...)
}

func (h *Helper) call(ctx context.Context, req Request) error {
	err := h.Runner.Run(ctx, h.Argv(req)...)
	if err == nil {
		return nil
	}
	var ce *system.CommandError
	if errors.As(err, &ce) {
		stderr := strings.TrimSpace(ce.Stderr)
		// sudo may warn before the helper runs ("sudo: unable to resolve
		// host …"), so the helper's own line decides who failed.
		helperSpoke := false
		for _, line := range strings.Split(stderr, "\n") {
			helperSpoke = helperSpoke || strings.HasPrefix(line, "banger-helper: ")
		}
		switch {
		case ce.ExitCode == 2 && helperSpoke && strings.Contains(stderr, "refused"):
			return fmt.Errorf("%s: %w: %s", req.Verb, ErrRefused, stderr)
		case !helperSpoke && (strings.Contains(stderr, "sudo:") || system.IsNotFound(err)):
			return fmt.Errorf("%s: %w (%s): run `sudo banger system setup` once for this user", req.Verb, ErrNoSudo, stderr)
		}
		if stderr != "" {
			return fmt.Errorf("%s: %s", req.Verb, stderr)
		}
	}
	return fmt.Errorf("%s: %w", req.Verb, err)
}

// Allocation implements Plumbing.
func (h *Helper) Allocation() allocation.Allocation { return h.alloc }

// CheckSetup implements Plumbing: it runs the helper's read-only check.
func (h *Helper) CheckSetup(ctx context.Context) error {
	return h.call(ctx, Request{Verb: CheckSetup})
}

// BridgeUp implements Plumbing.
func (h *Helper) BridgeUp(ctx context.Context) error { return h.call(ctx, Request{Verb: BridgeUp}) }

// BridgeDown implements Plumbing.
func (h *Helper) BridgeDown(ctx context.Context) error {
	return h.call(ctx, Request{Verb: BridgeDown})
}

// TAPAdd implements Plumbing.
func (h *Helper) TAPAdd(ctx context.Context, name string, mac net.HardwareAddr) error {
	return h.call(ctx, Request{Verb: TAPAdd, TAP: name, MAC: mac})
}

// TAPDel implements Plumbing.
func (h *Helper) TAPDel(ctx context.Context, name string) error {
	return h.call(ctx, Request{Verb: TAPDel, TAP: name})
}

// NATUp implements Plumbing.
func (h *Helper) NATUp(ctx context.Context) error { return h.call(ctx, Request{Verb: NATUp}) }

// NATDown implements Plumbing.
func (h *Helper) NATDown(ctx context.Context) error { return h.call(ctx, Request{Verb: NATDown}) }

// DNSUp implements Plumbing.
func (h *Helper) DNSUp(ctx context.Context) error { return h.call(ctx, Request{Verb: DNSUp}) }

// DNSDown implements Plumbing.
func (h *Helper) DNSDown(ctx context.Context) error { return h.call(ctx, Request{Verb: DNSDown}) }
