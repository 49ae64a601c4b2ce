package hostsetup

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"banger/internal/allocation"
	"banger/internal/network"
)

// Remove undoes Setup for opts.User: what Teardown removes (the user's
// bangerd here, TAPs, resolver settings, bridge, NAT chains, runtime
// directory, ip_forward when it was the last banger network), the sudoers rule, the group and subordinate ids
// setup added, and the allocation; the helper too when no allocation is
// left. It goes on past a failed step and reports them all; running it
// again finishes what remains.
func Remove(ctx context.Context, opts Options, deps Deps) error {
	opts.fill()
	deps.fill()
	if err := checkRoot(deps, opts); err != nil {
		return err
	}
	unlock, err := opts.Registry.Lock()
	if err != nil {
		return fmt.Errorf("system setup --remove: %w", err)
	}
	defer unlock()

	var errs []error
	a, err := opts.Registry.Load(opts.User)
	switch {
	case errors.Is(err, allocation.ErrNotSetUp):
		say(deps.Out, "no allocation for %s", opts.User)
	case err != nil:
		// A record that fails its checks is still the user's to remove;
		// its network is left for an administrator to look at.
		errs = append(errs, err)
	default:
		_, acctErr := deps.Accounts.Lookup(a.User)
		errs = append(errs, footprint(ctx, opts, deps, a, acctErr == nil)...)
		if acctErr != nil {
			say(deps.Out, "account %s is gone: no group or subordinate ids to take back", a.User)
		} else {
			errs = append(errs, revokeGrants(ctx, deps, a)...)
		}
	}
	sudoers := filepath.Join(opts.SudoersDir, SudoersFileName(opts.User))
	if removed, err := removeFile(sudoers); err != nil {
		errs = append(errs, err)
	} else if removed {
		say(deps.Out, "removed %s", sudoers)
	}
	if len(errs) == 0 {
		if err := opts.Registry.Remove(opts.User); err != nil {
			errs = append(errs, err)
		} else if a.User != "" {
			say(deps.Out, "removed the allocation of %s (%s, %s)", a.User, a.Bridge, a.Subnet)
		}
		left, err := opts.Registry.List()
		switch {
		case err != nil:
			errs = append(errs, err)
		case len(left) == 0:
			if removed, err := removeFile(opts.HelperPath); err != nil {
				errs = append(errs, err)
			} else if removed {
				say(deps.Out, "removed the helper %s (no user is set up any more)", opts.HelperPath)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("system setup --remove for %s (the allocation is kept until every step succeeds; run it again): %w", opts.User, err)
	}
	return nil
}

// teardown removes the user's network: their TAPs, bridge and chains.
// systemd-resolved forgets the bridge's settings with the bridge.
func teardown(ctx context.Context, deps Deps, a allocation.Allocation) []error {
	var errs []error
	p, err := deps.plumbing(a)
	if err != nil {
		return []error{err}
	}
	mgr, err := network.New(a.Network(), network.Deps{Links: deps.Links})
	if err != nil {
		return []error{err}
	}
	taps, err := mgr.ListTAPs(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	for _, t := range taps {
		if t.Owner != a.UID {
			say(deps.Out, "left tap %s alone: owned by uid %d, not %s", t.Name, t.Owner, a.User)
			continue
		}
		if err := p.TAPDel(ctx, t.Name); err != nil {
			errs = append(errs, err)
		} else {
			say(deps.Out, "removed tap %s", t.Name)
		}
	}
	if _, err := deps.Links.Link(a.Bridge); err == nil {
		if err := p.BridgeDown(ctx); err != nil {
			errs = append(errs, err)
		} else {
			say(deps.Out, "removed bridge %s", a.Bridge)
		}
	}
	if err := p.NATDown(ctx); err != nil {
		errs = append(errs, err)
	} else {
		say(deps.Out, "removed nat chains %s-* (if they were there)", strings.TrimSuffix(a.Chains.Forward, "-FWD"))
	}
	return errs
}

// revokeGrants undoes the group membership and subordinate ids setup
// added, and only those.
func revokeGrants(ctx context.Context, deps Deps, a allocation.Allocation) []error {
	var errs []error
	for _, g := range a.Granted.Groups {
		gpasswd, err := deps.LookPath("gpasswd")
		if err == nil {
			err = deps.Runner.Run(ctx, gpasswd, "-d", a.User, g)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("removing %s from group %s: %w", a.User, g, err))
			continue
		}
		say(deps.Out, "removed %s from group %s (setup had added it)", a.User, g)
	}
	if a.Granted.SubIDs != "" {
		var start, count int
		if _, err := fmt.Sscanf(a.Granted.SubIDs, "%d:%d", &start, &count); err != nil || count < 1 {
			return append(errs, fmt.Errorf("subordinate ids %q in the allocation of %s: not START:COUNT", a.Granted.SubIDs, a.User))
		}
		span := fmt.Sprintf("%d-%d", start, start+count-1)
		usermod, err := deps.LookPath("usermod")
		if err == nil {
			err = deps.Runner.Run(ctx, usermod, "--del-subuids", span, "--del-subgids", span, a.User)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("removing subordinate ids %s of %s: %w", span, a.User, err))
		} else {
			say(deps.Out, "removed subordinate ids %s of %s (setup had added them)", span, a.User)
		}
	}
	return errs
}
