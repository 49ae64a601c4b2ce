package guest

import (
	_ "embed"
	"encoding/hex"
	"fmt"
	"net/netip"
	"time"
)

//go:embed reidentify.sh
var reidentifyScript string

//go:embed reidentify.pl
var reidentifyProgram string

// Identity is what a cloned guest takes while it runs: the names, address
// and keys a freshly made VM has written into its disk.
type Identity struct {
	Hostname string
	Domain   string
	Address  netip.Prefix
	Gateway  netip.Addr
	MAC      string
	// MachineID is 32 lowercase hex digits.
	MachineID string
	// Entropy is credited to the guest's random pool (64 bytes or so).
	Entropy []byte
	HostKey HostKey
	// Time is the host's time, which the guest's clock is set to first.
	Time time.Time
}

// ReidentifyRequest is the command that gives a running clone id, the
// host private key on its stdin (Reidentify's second result). The guest
// answers as before until the command has returned, then moves to the new
// address and host key. Build it right before it runs: the guest's clock
// is set to id.Time.
func ReidentifyRequest(id Identity) (ExecRequest, []byte, error) {
	switch {
	case !id.Address.IsValid() || !id.Gateway.IsValid():
		return ExecRequest{}, nil, fmt.Errorf("re-identifying %s: no address or gateway", id.Hostname)
	case len(id.Entropy) == 0:
		return ExecRequest{}, nil, fmt.Errorf("re-identifying %s: no entropy", id.Hostname)
	case len(id.HostKey.PrivatePEM) == 0:
		return ExecRequest{}, nil, fmt.Errorf("re-identifying %s: no host key", id.Hostname)
	case id.Time.IsZero():
		return ExecRequest{}, nil, fmt.Errorf("re-identifying %s: no time", id.Hostname)
	}
	pub := string(id.HostKey.AuthorizedKey)
	for len(pub) > 0 && pub[len(pub)-1] == '\n' {
		pub = pub[:len(pub)-1]
	}
	return ExecRequest{Argv: []string{
		"sh", "-c", reidentifyScript, "banger-reidentify", reidentifyProgram,
		id.Hostname, id.Domain, id.Address.String(), id.Gateway.String(), id.MAC, id.MachineID,
		hex.EncodeToString(id.Entropy), pub, fmt.Sprintf("%d.%09d", id.Time.Unix(), id.Time.Nanosecond()),
	}}, id.HostKey.PrivatePEM, nil
}
