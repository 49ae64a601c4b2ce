package network

import (
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

const (
	// DefaultBridge is the bridge banger uses unless configured otherwise.
	DefaultBridge = "banger0"
	// TAPPrefix starts the name of every TAP banger makes for the default
	// allocation (bangerd as root); other users' allocations have their own
	// (Config.TAPPrefix). ListTAPs relies on it.
	TAPPrefix = "bg-"
	// MaxIfName is the longest Linux interface name (IFNAMSIZ minus the NUL).
	MaxIfName = 15
	// minTAPRoom is how many characters a TAP prefix must leave for the id.
	minTAPRoom = 8
)

// DefaultSubnet is the IPv4 subnet banger's bridge serves unless configured
// otherwise. 10.213.0.0/24 sits outside Docker's default pools
// (172.17.0.0/12, 192.168.0.0/16), libvirt's 192.168.122.0/24, the usual home
// router ranges and Kubernetes' common 10.96.0.0/12 and 10.244.0.0/16, so it
// rarely clashes; EnsureBridge refuses to use a subnet that does.
var DefaultSubnet = netip.MustParsePrefix("10.213.0.0/24")

// ErrSubnetFull is returned by Allocate when every host address is taken.
var ErrSubnetFull = errors.New("no free address in subnet")

// Gateway returns the bridge's address in subnet: its first host address.
func Gateway(subnet netip.Prefix) netip.Addr {
	return subnet.Masked().Addr().Next()
}

// Broadcast returns the last address of an IPv4 subnet.
func Broadcast(subnet netip.Prefix) netip.Addr {
	a := subnet.Masked().Addr().As4()
	host := uint32(1)<<(32-subnet.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// ValidateSubnet checks that subnet is an IPv4 network with room for the
// gateway and at least one guest.
func ValidateSubnet(subnet netip.Prefix) error {
	if !subnet.IsValid() || !subnet.Addr().Is4() {
		return fmt.Errorf("subnet %v: want an IPv4 network such as %v", subnet, DefaultSubnet)
	}
	if subnet.Bits() > 29 {
		return fmt.Errorf("subnet %v: too small, want /29 or larger", subnet)
	}
	if subnet.Masked() != subnet {
		return fmt.Errorf("subnet %v: has host bits set, did you mean %v?", subnet, subnet.Masked())
	}
	return nil
}

// Allocate returns the lowest host address of subnet that is neither the
// network, broadcast or gateway address nor in taken. It is pure: the daemon
// stores the result in the VM's record and reuses it on every start, so an
// address never moves once given.
func Allocate(subnet netip.Prefix, taken []netip.Addr) (netip.Addr, error) {
	if err := ValidateSubnet(subnet); err != nil {
		return netip.Addr{}, fmt.Errorf("allocating address: %w", err)
	}
	used := make(map[netip.Addr]bool, len(taken))
	for _, a := range taken {
		used[a.Unmap()] = true
	}
	last := Broadcast(subnet)
	for a := Gateway(subnet).Next(); a.IsValid() && a != last; a = a.Next() {
		if !used[a] {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("allocating address in %v (%d taken): %w", subnet, len(taken), ErrSubnetFull)
}

// tapChars are the characters a TAP name may carry after its prefix.
const tapChars = "abcdefghijklmnopqrstuvwxyz0123456789-"

// TAPName returns the TAP device name for a VM id with the default prefix:
// "bg-" followed by the id when it is short and made of lowercase letters,
// digits and dashes, else by 12 characters of a hash of the id. The result
// always fits in 15 characters.
func TAPName(id string) string { return TAPNameFor(TAPPrefix, id) }

// TAPNameFor is TAPName with another prefix (a user's allocation's): the id
// itself when it fits in what the prefix leaves of 15 characters, else as
// many characters of its hash. prefix must pass ValidateTAPPrefix.
func TAPNameFor(prefix, id string) string {
	room := MaxIfName - len(prefix)
	if id != "" && len(id) <= room && strings.Trim(id, tapChars) == "" {
		return prefix + id
	}
	sum := sha256.Sum256([]byte(id))
	enc := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:]))
	return prefix + enc[:room]
}

// ValidateTAPPrefix checks a TAP name prefix: lowercase letters and digits
// ending in '-', leaving at least 8 of the 15 characters for the id.
func ValidateTAPPrefix(prefix string) error {
	body, ok := strings.CutSuffix(prefix, "-")
	switch {
	case !ok || body == "" || strings.Trim(body, "abcdefghijklmnopqrstuvwxyz0123456789") != "":
		return fmt.Errorf("tap prefix %q: want lowercase letters and digits ending in '-', such as %q", prefix, TAPPrefix)
	case len(prefix) > MaxIfName-minTAPRoom:
		return fmt.Errorf("tap prefix %q: too long, at most %d characters", prefix, MaxIfName-minTAPRoom)
	}
	return nil
}

// ValidateTAPName checks that name is a TAP name with prefix: the prefix,
// then 1 to 15-len(prefix) lowercase letters, digits and dashes.
func ValidateTAPName(prefix, name string) error {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok || rest == "" || len(name) > MaxIfName || strings.Trim(rest, tapChars) != "" {
		return fmt.Errorf("tap name %q: want %q plus 1 to %d of a-z, 0-9 and '-'", name, prefix, MaxIfName-len(prefix))
	}
	return nil
}

// ValidateIfName checks that name can be a Linux interface name that banger
// makes: 1 to 15 characters of letters, digits, '-', '_' and '.', not "." or
// "..", not starting with '-'. It keeps names out of argv option and path
// syntax wherever they travel (iptables rules, resolvectl, sysfs).
func ValidateIfName(name string) error {
	switch {
	case name == "" || len(name) > MaxIfName:
		return fmt.Errorf("interface name %q: want 1 to %d characters", name, MaxIfName)
	case name == "." || name == ".." || strings.HasPrefix(name, "-"):
		return fmt.Errorf("interface name %q: not allowed", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("interface name %q: character %q not allowed (letters, digits, '-', '_', '.')", name, r)
		}
	}
	return nil
}

// GuestMAC returns the MAC address the VMM gives the guest's network card
// for a VM id. It is locally administered, unicast, and stable for the id.
func GuestMAC(id string) net.HardwareAddr { return derivedMAC(0x02, "guest:"+id) }

// TAPMAC returns the MAC address of the host side of a VM's TAP. It differs
// from GuestMAC: a bridge port whose own address equals the guest's would
// swallow frames meant for the guest.
func TAPMAC(id string) net.HardwareAddr { return derivedMAC(0x06, "tap:"+id) }

// bridgeMAC pins the bridge's address, which otherwise follows its ports and
// would make guests' ARP caches go stale as VMs come and go.
func bridgeMAC(name string) net.HardwareAddr { return derivedMAC(0x0a, "bridge:"+name) }

// derivedMAC hashes seed into five bytes behind first, which must have the
// locally-administered bit set and the multicast bit clear.
func derivedMAC(first byte, seed string) net.HardwareAddr {
	sum := sha256.Sum256([]byte(seed))
	return net.HardwareAddr{first, sum[0], sum[1], sum[2], sum[3], sum[4]}
}
