package privhelper

import (
	"fmt"
	"net"
	"strings"

	"banger/internal/allocation"
	"banger/internal/network"
)

// Verb is one of the helper's operations.
type Verb string

// The verbs, spelled as on the helper's command line.
const (
	BridgeUp   Verb = "bridge up"
	BridgeDown Verb = "bridge down"
	TAPAdd     Verb = "tap add"
	TAPDel     Verb = "tap del"
	NATUp      Verb = "nat up"
	NATDown    Verb = "nat down"
	DNSUp      Verb = "dns up"
	DNSDown    Verb = "dns down"
	// CheckSetup changes nothing: it succeeds when sudo runs the helper,
	// the caller is identified and their allocation record passes its
	// checks (banger doctor's probe).
	CheckSetup Verb = "check"
)

// Grammar is the helper's whole command line, for messages and usage.
const Grammar = "[--user NAME] check | bridge up|down | tap add NAME MAC | tap del NAME | nat up|down | dns up|down"

// Request is one parsed helper call.
type Request struct {
	// User names whose allocation to act on; only root may set it.
	User string
	Verb Verb
	// TAP and MAC are the arguments of tap add and tap del.
	TAP string
	MAC net.HardwareAddr
}

// RefusedError is a call the helper will not make: bad grammar, a caller
// it cannot verify, an argument outside the caller's allocation. Nothing
// was changed.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "refused: " + e.Reason }

func refuse(format string, args ...any) error {
	return &RefusedError{Reason: fmt.Sprintf(format, args...)}
}

// maxArg bounds every argument; the longest valid one is a MAC address.
const maxArg = 64

// Parse reads the helper's arguments by its fixed grammar (see Grammar). It
// checks the form of every argument; whether a name is the caller's is
// Check's job, against the allocation and the host.
func Parse(args []string) (Request, error) {
	for _, a := range args {
		if len(a) > maxArg {
			return Request{}, refuse("argument of %d bytes; no argument of the helper is longer than %d", len(a), maxArg)
		}
		for _, r := range a {
			if r <= ' ' || r > '~' {
				return Request{}, refuse("argument %q has a space, control or non-ASCII character", a)
			}
		}
	}
	var req Request
	if len(args) >= 1 && args[0] == "--user" {
		if len(args) < 2 {
			return Request{}, refuse("--user needs a user name")
		}
		if err := allocation.ValidateUser(args[1]); err != nil {
			return Request{}, refuse("--user: %v", err)
		}
		req.User, args = args[1], args[2:]
	}
	if len(args) == 1 && args[0] == string(CheckSetup) {
		req.Verb = CheckSetup
		return req, nil
	}
	if len(args) < 2 {
		return Request{}, refuse("want %s, got %q", Grammar, strings.Join(args, " "))
	}
	req.Verb = Verb(args[0] + " " + args[1])
	rest := args[2:]
	switch req.Verb {
	case BridgeUp, BridgeDown, NATUp, NATDown, DNSUp, DNSDown:
		if len(rest) != 0 {
			return Request{}, refuse("%s takes no arguments, got %q", req.Verb, strings.Join(rest, " "))
		}
	case TAPAdd:
		if len(rest) != 2 {
			return Request{}, refuse("want tap add NAME MAC, got %d arguments", len(rest))
		}
		if err := network.ValidateIfName(rest[0]); err != nil {
			return Request{}, refuse("tap add: %v", err)
		}
		mac, err := parseMAC(rest[1])
		if err != nil {
			return Request{}, refuse("tap add %s: %v", rest[0], err)
		}
		req.TAP, req.MAC = rest[0], mac
	case TAPDel:
		if len(rest) != 1 {
			return Request{}, refuse("want tap del NAME, got %d arguments", len(rest))
		}
		if err := network.ValidateIfName(rest[0]); err != nil {
			return Request{}, refuse("tap del: %v", err)
		}
		req.TAP = rest[0]
	default:
		return Request{}, refuse("unknown command %q; want %s", strings.Join(args, " "), Grammar)
	}
	return req, nil
}

// parseMAC accepts a colon-separated, locally administered unicast
// Ethernet address, as TAPMAC makes.
func parseMAC(s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s)
	switch {
	case err != nil || len(mac) != 6 || strings.Count(s, ":") != 5:
		return nil, fmt.Errorf("mac %q: want six colon-separated hex bytes", s)
	case mac[0]&0x01 != 0:
		return nil, fmt.Errorf("mac %s: multicast, want unicast", mac)
	case mac[0]&0x02 == 0:
		return nil, fmt.Errorf("mac %s: globally administered, want a locally administered one", mac)
	}
	return mac, nil
}

// Argv returns the helper's arguments for r: Parse(r.Argv()) gives r back.
func (r Request) Argv() []string {
	var out []string
	if r.User != "" {
		out = append(out, "--user", r.User)
	}
	out = append(out, strings.Fields(string(r.Verb))...)
	switch r.Verb {
	case TAPAdd:
		out = append(out, r.TAP, r.MAC.String())
	case TAPDel:
		out = append(out, r.TAP)
	}
	return out
}
