package forward

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Proto is a forward's transport protocol.
type Proto string

// Protocols.
const (
	TCP Proto = "tcp"
	UDP Proto = "udp"
)

// Spec is one forward: the host address and port it listens on, and the
// guest port it reaches.
type Spec struct {
	HostAddr  netip.Addr
	HostPort  uint16
	GuestPort uint16
	Proto     Proto
}

// defaultHostAddr is where a forward listens when the spec names no
// address: loopback only, so a forward never exposes a guest to the
// network unless asked to.
func defaultHostAddr() netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 0, 1}) }

// ParseSpec parses `[ADDR:]HOSTPORT:GUESTPORT[/tcp|/udp]`: ports 1–65535,
// ADDR an IP address (IPv6 in brackets, "localhost" meaning 127.0.0.1),
// 127.0.0.1 and tcp when left out.
func ParseSpec(s string) (Spec, error) {
	bad := func(format string, args ...any) (Spec, error) {
		return Spec{}, fmt.Errorf("forward %q: %s (want [ADDR:]HOSTPORT:GUESTPORT[/tcp|/udp], e.g. 8080:80 or 0.0.0.0:5353:53/udp)", s, fmt.Sprintf(format, args...))
	}
	spec := Spec{HostAddr: defaultHostAddr(), Proto: TCP}
	rest := s
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		switch p := Proto(strings.ToLower(rest[i+1:])); p {
		case TCP, UDP:
			spec.Proto = p
		default:
			return bad("unknown protocol %q", rest[i+1:])
		}
		rest = rest[:i]
	}
	var addr string
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]:")
		if end < 0 {
			return bad("an address in brackets must be followed by :HOSTPORT:GUESTPORT")
		}
		addr, rest = rest[1:end], rest[end+2:]
	}
	parts := strings.Split(rest, ":")
	switch {
	case len(parts) == 3 && addr == "":
		addr, parts = parts[0], parts[1:]
	case len(parts) != 2:
		if strings.Count(rest, ":") > 2 {
			return bad("put an IPv6 address in brackets, as [::1]:8080:80")
		}
		return bad("a host port and a guest port are needed")
	}
	if addr != "" {
		a, err := parseAddr(addr)
		if err != nil {
			return bad("%v", err)
		}
		spec.HostAddr = a
	}
	var err error
	if spec.HostPort, err = parsePort(parts[0]); err != nil {
		return bad("host port: %v", err)
	}
	if spec.GuestPort, err = parsePort(parts[1]); err != nil {
		return bad("guest port: %v", err)
	}
	return spec, nil
}

func parseAddr(s string) (netip.Addr, error) {
	if strings.EqualFold(s, "localhost") {
		return defaultHostAddr(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	return a.Unmap(), nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return uint16(n), nil
}

// String renders the spec in full, as ParseSpec reads it back:
// "127.0.0.1:8080:80/tcp", "[::1]:5353:53/udp".
func (s Spec) String() string {
	return fmt.Sprintf("%s:%d/%s", s.HostAddrPort(), s.GuestPort, s.Proto)
}

// HostAddrPort is the address the forward listens on.
func (s Spec) HostAddrPort() netip.AddrPort { return netip.AddrPortFrom(s.HostAddr, s.HostPort) }

// Validate checks a spec built without ParseSpec (read from the database).
func (s Spec) Validate() error {
	if !s.HostAddr.IsValid() {
		return fmt.Errorf("forward to guest port %d: no host address", s.GuestPort)
	}
	_, err := ParseSpec(s.String())
	return err
}

// key identifies a forward on the host: one listener per address, port
// and protocol.
type key struct {
	addr  netip.AddrPort
	proto Proto
}

func (s Spec) key() key { return key{s.HostAddrPort(), s.Proto} }
