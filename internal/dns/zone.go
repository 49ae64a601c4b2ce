package dns

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	mdns "github.com/miekg/dns"
)

// reverseZones returns the in-addr.arpa zones that cover an IPv4 subnet.
// A prefix on an octet boundary maps to one zone; otherwise the prefix is
// rounded up to the next octet, which yields at most 128 zones (a /17 gives
// 128 /24 zones). Prefixes shorter than /8 are rounded down to /8.
func reverseZones(subnet netip.Prefix) ([]string, error) {
	if !subnet.IsValid() {
		return nil, nil
	}
	subnet = subnet.Masked()
	if !subnet.Addr().Is4() {
		return nil, fmt.Errorf("reverse zone for %v: only IPv4 subnets are supported", subnet)
	}
	bits := subnet.Bits()
	if bits < 8 {
		subnet = netip.PrefixFrom(subnet.Addr(), 8)
		bits = 8
	}
	if bits > 24 {
		// Classless delegation (RFC 2317) is not needed for a local zone:
		// serve the enclosing /24 and answer only for addresses inside.
		bits = 24
		subnet = netip.PrefixFrom(subnet.Addr(), 24).Masked()
	}
	round := (bits + 7) / 8 * 8
	n := 1 << (round - bits)
	base := subnet.Addr().As4()
	var zones []string
	for i := 0; i < n; i++ {
		b := base
		// Add i at the last octet of the rounded prefix.
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		v += uint32(i) << (32 - round)
		b = [4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
		var labels []string
		for j := round/8 - 1; j >= 0; j-- {
			labels = append(labels, strconv.Itoa(int(b[j])))
		}
		zones = append(zones, strings.Join(labels, ".")+".in-addr.arpa.")
	}
	return zones, nil
}

// parseReverse turns a full in-addr.arpa name ("4.3.2.1.in-addr.arpa.")
// into its IPv4 address.
func parseReverse(name string) (netip.Addr, bool) {
	rest, ok := strings.CutSuffix(name, ".in-addr.arpa.")
	if !ok {
		return netip.Addr{}, false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 4 {
		return netip.Addr{}, false
	}
	var b [4]byte
	for i, p := range parts {
		if len(p) == 0 || len(p) > 3 || (len(p) > 1 && p[0] == '0') {
			return netip.Addr{}, false
		}
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 || v > 255 {
			return netip.Addr{}, false
		}
		b[3-i] = byte(v)
	}
	return netip.AddrFrom4(b), true
}

// inZone reports whether the canonical name lies at or below the zone.
func inZone(name, zone string) bool {
	return name == zone || strings.HasSuffix(name, "."+zone)
}

// zoneOf returns the zone among zones that holds name, or "".
func zoneOf(name string, zones []string) string {
	for _, z := range zones {
		if inZone(name, z) {
			return z
		}
	}
	return ""
}

// localAddr returns the IP the listener answered on, used for the A record
// of the zone apex (which is also the zone's name server).
func localAddr(a net.Addr) netip.Addr {
	switch v := a.(type) {
	case *net.UDPAddr:
		if ip, ok := netip.AddrFromSlice(v.IP); ok {
			return ip.Unmap()
		}
	case *net.TCPAddr:
		if ip, ok := netip.AddrFromSlice(v.IP); ok {
			return ip.Unmap()
		}
	}
	if a != nil {
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			return ap.Addr().Unmap()
		}
	}
	return netip.Addr{}
}

// addrRR returns an A or AAAA record for ip.
func addrRR(name string, ip netip.Addr, ttl uint32) mdns.RR {
	if ip.Is4() {
		return &mdns.A{Hdr: mdns.RR_Header{Name: name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: ttl}, A: ip.AsSlice()}
	}
	return &mdns.AAAA{Hdr: mdns.RR_Header{Name: name, Rrtype: mdns.TypeAAAA, Class: mdns.ClassINET, Ttl: ttl}, AAAA: ip.AsSlice()}
}

func addrType(ip netip.Addr) uint16 {
	if ip.Is4() {
		return mdns.TypeA
	}
	return mdns.TypeAAAA
}

// ReverseZonesOf returns the in-addr.arpa zones that cover subnet, as a
// Server configured with it serves them.
func ReverseZonesOf(subnet netip.Prefix) ([]string, error) { return reverseZones(subnet) }
