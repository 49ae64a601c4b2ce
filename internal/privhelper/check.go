package privhelper

import (
	"errors"
	"fmt"
	"io/fs"

	"banger/internal/allocation"
	"banger/internal/network"
)

// Check refuses a request that would touch anything outside allocation a,
// given the host's links: a TAP must carry a's prefix, and a TAP of that
// name that exists must be a TAP owned by a's uid, attached to a's bridge
// or to none; a TAP is added only to a's bridge, which must exist; a link
// named like a's bridge must be a bridge. It changes nothing.
func Check(req Request, a allocation.Allocation, links network.Links) error {
	switch req.Verb {
	case TAPAdd, TAPDel:
		if err := network.ValidateTAPName(a.TAPPrefix, req.TAP); err != nil {
			return refuse("%s %s: %v (the TAPs of %s's allocation)", req.Verb, req.TAP, err, a.User)
		}
		if req.Verb == TAPAdd {
			br, err := links.Link(a.Bridge)
			if errors.Is(err, fs.ErrNotExist) || err == nil && br.Kind != "bridge" {
				return refuse("tap add %s: %s's bridge %s is not up; run bridge up first", req.TAP, a.User, a.Bridge)
			}
			if err != nil {
				return fmt.Errorf("tap add %s: %w", req.TAP, err)
			}
		}
		cur, err := links.Link(req.TAP)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", req.Verb, req.TAP, err)
		}
		// A TAP made without an owner (root's) reads back as owned by 0.
		owner := a.UID
		switch {
		case cur.Kind != "tuntap":
			return refuse("%s %s: it is a %s, not a tap", req.Verb, req.TAP, cur.Kind)
		case cur.Owner != owner:
			return refuse("%s %s: it is owned by uid %d, not by %s (uid %d)", req.Verb, req.TAP, cur.Owner, a.User, a.UID)
		case cur.Master != "" && cur.Master != a.Bridge:
			return refuse("%s %s: it is attached to %s, not to %s's bridge %s", req.Verb, req.TAP, cur.Master, a.User, a.Bridge)
		}
	case BridgeUp, BridgeDown, DNSUp, DNSDown:
		cur, err := links.Link(a.Bridge)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", req.Verb, err)
		}
		if cur.Kind != "bridge" {
			return refuse("%s: %s is a %s, not %s's bridge; remove it or run `sudo banger system setup --remove --user %s` and set up again", req.Verb, a.Bridge, cur.Kind, a.User, a.User)
		}
	case NATUp, NATDown, CheckSetup:
	default:
		return refuse("unknown verb %q", req.Verb)
	}
	return nil
}
