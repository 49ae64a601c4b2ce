package allocation

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"banger/internal/nat"
	"banger/internal/network"
)

// Pool is where users' allocations come from.
type Pool struct {
	// Subnets is cut into subnets of Bits bits, tried in address order.
	Subnets netip.Prefix
	Bits    int
	// PortBase is the first DNS port: index i gets PortBase+2i for its
	// loopback listener and PortBase+2i+1 for its guest listener.
	PortBase int
	// MaxIndex bounds the number of users (names stay within 15 characters
	// for interfaces and 28 for chains up to 999).
	MaxIndex int
}

// DefaultPool is 10.213.0.0/16 in /24s (the default allocation's
// 10.213.0.0/24 excepted), DNS ports from 42100, at most 999 users.
func DefaultPool() Pool {
	return Pool{Subnets: netip.MustParsePrefix("10.213.0.0/16"), Bits: 24, PortBase: 42100, MaxIndex: 999}
}

// Validate checks that the pool can hand out what it promises.
func (p Pool) Validate() error {
	switch {
	case !p.Subnets.IsValid() || !p.Subnets.Addr().Is4() || p.Subnets.Masked() != p.Subnets:
		return fmt.Errorf("subnet pool %v: want an IPv4 network such as 10.213.0.0/16", p.Subnets)
	case p.Bits < p.Subnets.Bits() || p.Bits > 29:
		return fmt.Errorf("subnet size /%d: want between /%d (the pool) and /29", p.Bits, p.Subnets.Bits())
	case p.PortBase < 1024 || p.PortBase+2*p.MaxIndex+1 > 65535:
		return fmt.Errorf("dns port base %d: ports from it must stay within 1024 to 65535", p.PortBase)
	case p.MaxIndex < 1 || p.MaxIndex > 999:
		return fmt.Errorf("at most %d users: want 1 to 999", p.MaxIndex)
	}
	return nil
}

// Host is what an allocation must not collide with on the host.
type Host struct {
	// Links are the names of the host's interfaces.
	Links []string
	// Prefixes are the host's interface addresses and non-default routes.
	Prefixes []netip.Prefix
	// Ports are local TCP and UDP ports in use.
	Ports []int
}

// ErrExhausted is returned when the pool has no room for another user.
var ErrExhausted = errors.New("allocation pool exhausted")

// Allocate returns a new allocation for user: the lowest free index whose
// bridge name no host link has and whose ports nobody uses, and the first
// subnet of the pool that overlaps neither a host address or route nor
// another allocation. taken holds the other users' allocations; the default
// allocation is always taken. It is pure: the caller records the result.
func Allocate(user string, uid int, taken []Allocation, host Host, pool Pool) (Allocation, error) {
	if err := ValidateUser(user); err != nil {
		return Allocation{}, fmt.Errorf("allocating for %s: %w", user, err)
	}
	if err := pool.Validate(); err != nil {
		return Allocation{}, fmt.Errorf("allocating for %s: %w", user, err)
	}
	taken = append([]Allocation{Default()}, taken...)
	for _, t := range taken {
		if t.User == user && t.Index != 0 {
			return Allocation{}, fmt.Errorf("allocating for %s: already allocated (index %d)", user, t.Index)
		}
	}
	index, err := freeIndex(taken, host, pool)
	if err != nil {
		return Allocation{}, fmt.Errorf("allocating for %s: %w", user, err)
	}
	subnet, err := freeSubnet(taken, host, pool)
	if err != nil {
		return Allocation{}, fmt.Errorf("allocating a /%d for %s: %w", pool.Bits, user, err)
	}
	zone := zoneFor(user, uid)
	if slices.ContainsFunc(taken, func(t Allocation) bool { return t.Zone == zone }) {
		zone = fmt.Sprintf("u%d.%s", uid, DefaultZone)
		if slices.ContainsFunc(taken, func(t Allocation) bool { return t.Zone == zone }) {
			return Allocation{}, fmt.Errorf("allocating for %s: zone %s is taken by another user", user, zone)
		}
	}
	a := Allocation{
		Version:      Version,
		User:         user,
		UID:          uid,
		Index:        index,
		Bridge:       bridgeName(index),
		Subnet:       subnet,
		TAPPrefix:    tapPrefix(index),
		Chains:       nat.ChainsWithPrefix(chainPrefix(index)),
		DNSPort:      pool.PortBase + 2*index,
		GuestDNSPort: pool.PortBase + 2*index + 1,
		Zone:         zone,
	}
	if err := a.Validate(); err != nil {
		return Allocation{}, fmt.Errorf("allocating for %s: %w", user, err)
	}
	return a, nil
}

func freeIndex(taken []Allocation, host Host, pool Pool) (int, error) {
	usedPorts := map[int]bool{}
	for _, p := range host.Ports {
		usedPorts[p] = true
	}
	for _, t := range taken {
		usedPorts[t.DNSPort], usedPorts[t.GuestDNSPort] = true, true
	}
	skipped := 0
	for i := 1; i <= pool.MaxIndex; i++ {
		if slices.ContainsFunc(taken, func(t Allocation) bool { return t.Index == i || t.Bridge == bridgeName(i) }) {
			continue
		}
		if slices.Contains(host.Links, bridgeName(i)) || usedPorts[pool.PortBase+2*i] || usedPorts[pool.PortBase+2*i+1] {
			skipped++
			continue
		}
		return i, nil
	}
	return 0, fmt.Errorf("all %d user slots are taken (%d by host links or ports in use): %w", pool.MaxIndex, skipped, ErrExhausted)
}

func freeSubnet(taken []Allocation, host Host, pool Pool) (netip.Prefix, error) {
	var busy []string
	overlaps := func(c netip.Prefix) bool {
		for _, t := range taken {
			if t.Subnet.Overlaps(c) {
				return true
			}
		}
		for _, p := range host.Prefixes {
			if p.Bits() > 0 && p.Overlaps(c) {
				busy = append(busy, p.Masked().String())
				return true
			}
		}
		return false
	}
	size := uint64(1) << (32 - pool.Bits)
	count := uint64(1) << (pool.Bits - pool.Subnets.Bits())
	start := addrUint(pool.Subnets.Addr())
	for n := range count {
		c := netip.PrefixFrom(uintAddr(start+uint32(n*size)), pool.Bits)
		if !overlaps(c) {
			return c, nil
		}
	}
	slices.Sort(busy)
	return netip.Prefix{}, fmt.Errorf("every /%d of %v overlaps another allocation or a host route (%v); pass --pool with a free range: %w",
		pool.Bits, pool.Subnets, slices.Compact(busy), ErrExhausted)
}

func addrUint(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func uintAddr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// HostFrom reads the host's link names, addresses and routes through links
// (network.Netlink{} on the host). Ports come from ListeningPorts.
func HostFrom(links network.Links) (Host, error) {
	ls, err := links.List()
	if err != nil {
		return Host{}, fmt.Errorf("reading host links: %w", err)
	}
	routes, err := links.Routes()
	if err != nil {
		return Host{}, fmt.Errorf("reading host routes: %w", err)
	}
	var h Host
	for _, l := range ls {
		h.Links = append(h.Links, l.Name)
		for _, a := range l.Addrs {
			h.Prefixes = append(h.Prefixes, a.Masked())
		}
	}
	for _, r := range routes {
		h.Prefixes = append(h.Prefixes, r.Dst.Masked())
	}
	return h, nil
}
