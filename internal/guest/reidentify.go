package guest

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
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
	args, err := id.args()
	if err != nil {
		return ExecRequest{}, nil, err
	}
	return ExecRequest{Argv: append([]string{"sh", "-c", reidentifyScript, "banger-reidentify", reidentifyProgram}, args...)}, id.HostKey.PrivatePEM, nil
}

// args are the program's arguments for id, in the order it reads them.
func (id Identity) args() ([]string, error) {
	switch {
	case !id.Address.IsValid() || !id.Gateway.IsValid():
		return nil, fmt.Errorf("re-identifying %s: no address or gateway", id.Hostname)
	case len(id.Entropy) == 0:
		return nil, fmt.Errorf("re-identifying %s: no entropy", id.Hostname)
	case len(id.HostKey.PrivatePEM) == 0:
		return nil, fmt.Errorf("re-identifying %s: no host key", id.Hostname)
	case id.Time.IsZero():
		return nil, fmt.Errorf("re-identifying %s: no time", id.Hostname)
	}
	pub := strings.TrimRight(string(id.HostKey.AuthorizedKey), "\n")
	return []string{
		id.Hostname, id.Domain, id.Address.String(), id.Gateway.String(), id.MAC, id.MachineID,
		hex.EncodeToString(id.Entropy), pub, fmt.Sprintf("%d.%09d", id.Time.Unix(), id.Time.Nanosecond()),
	}, nil
}

// AgentPort is the TCP port a warm template's identity agent listens on,
// at the template's address. It is below 1024: only root in the guest can
// bind it.
const AgentPort = 222

// NewAgentToken returns the secret an identity agent wants first on every
// connection: 32 random bytes in hex.
func NewAgentToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making an identity agent's token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// ArmAgentRequest is the command that leaves banger's identity agent
// waiting in a guest on addr:AgentPort; its token goes on stdin. Armed in
// a warm template before it is saved, the agent waits in every VM restored
// from it, so the daemon gives each its identity (GiveIdentity) without an
// SSH handshake: under emulation that is half a second or more.
func ArmAgentRequest(addr netip.Addr) ExecRequest {
	return ExecRequest{Argv: []string{"sh", "-c", reidentifyScript, "banger-reidentify", reidentifyProgram,
		"--listen", addr.String(), strconv.Itoa(AgentPort)}}
}

// GiveIdentity gives id to the identity agent at the other end of conn,
// which knows token, and returns what the agent said. The guest moves to
// its new address and host key once it has answered. id.Time is set from
// now right before the identity is sent.
func GiveIdentity(ctx context.Context, conn net.Conn, token string, id Identity, now func() time.Time) (string, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	id.Time = now()
	args, err := id.args()
	if err != nil {
		return "", err
	}
	var req bytes.Buffer
	req.WriteString(token + "\n")
	for _, a := range args {
		if strings.ContainsAny(a, "\r\n") {
			return "", fmt.Errorf("re-identifying %s: a line break in %q", id.Hostname, a)
		}
		req.WriteString(a + "\n")
	}
	req.Write(id.HostKey.PrivatePEM)
	if _, err := conn.Write(req.Bytes()); err != nil {
		return "", fmt.Errorf("sending the identity to the agent: %w", err)
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	said, err := io.ReadAll(io.LimitReader(conn, 64<<10))
	out := strings.TrimSpace(string(said))
	if err != nil {
		return out, fmt.Errorf("reading the identity agent's answer: %w", err)
	}
	last := out
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		last = out[i+1:]
	}
	if last != "ok" {
		if last == "" {
			last = "no answer"
		}
		return out, fmt.Errorf("the identity agent says: %s", last)
	}
	return strings.TrimSpace(strings.TrimSuffix(out, "ok")), nil
}
