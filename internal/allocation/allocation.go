package allocation

import (
	"fmt"
	"net/netip"
	"strings"

	"banger/internal/nat"
	"banger/internal/network"
)

// Version is the record format written by this build.
const Version = 1

// DefaultDNSPort is the DNS port (loopback and guest) of the default
// allocation, config's dns_listen and dns_guest_port defaults.
const DefaultDNSPort = 42069

// DefaultZone is the DNS zone of the default allocation.
const DefaultZone = "vm."

// Allocation is one user's share of the host's networking. Every name in it
// is checked by Validate before anything acts on it.
type Allocation struct {
	Version int `json:"version"`
	// User and UID say whose it is; the helper refuses a caller whose uid
	// differs.
	User string `json:"user"`
	UID  int    `json:"uid"`
	// Index numbers the allocation; 0 is the default one, users get 1 and
	// up, and the names below derive from it.
	Index  int          `json:"index"`
	Bridge string       `json:"bridge"`
	Subnet netip.Prefix `json:"subnet"`
	// TAPPrefix starts the names of the user's TAPs ("bg3-").
	TAPPrefix string     `json:"tap_prefix"`
	Chains    nat.Chains `json:"chains"`
	// DNSPort is the daemon's loopback DNS listener (127.0.0.1:DNSPort),
	// GuestDNSPort its listener on the gateway, where guests' port 53 is
	// redirected.
	DNSPort      int `json:"dns_port"`
	GuestDNSPort int `json:"guest_dns_port"`
	// Zone is the DNS zone the host resolver routes to this user's daemon:
	// "vm." for the default allocation, "USER.vm." for a user.
	Zone string `json:"zone"`
	// Granted records what `banger system setup` changed on the host for
	// this user besides the allocation, so that --remove undoes exactly it.
	Granted Granted `json:"granted"`
}

// Granted lists host changes made by setup for the user.
type Granted struct {
	// Groups the user was added to (say "kvm").
	Groups []string `json:"groups,omitempty"`
	// SubIDs is the subordinate uid and gid range added ("START:COUNT"),
	// empty when the user had one already.
	SubIDs string `json:"subids,omitempty"`
}

// Default returns the allocation of bangerd running as root, the one that
// exists without setup.
func Default() Allocation {
	return Allocation{
		Version:      Version,
		User:         "root",
		UID:          0,
		Index:        0,
		Bridge:       network.DefaultBridge,
		Subnet:       network.DefaultSubnet,
		TAPPrefix:    network.TAPPrefix,
		Chains:       nat.DefaultChains(),
		DNSPort:      DefaultDNSPort,
		GuestDNSPort: DefaultDNSPort,
		Zone:         DefaultZone,
	}
}

// Names derived from an index, for users' allocations.
func bridgeName(i int) string  { return fmt.Sprintf("banger%d", i) }
func tapPrefix(i int) string   { return fmt.Sprintf("bg%d-", i) }
func chainPrefix(i int) string { return fmt.Sprintf("BANGER%d", i) }

// Gateway returns the bridge's address: the first host of the subnet.
func (a Allocation) Gateway() netip.Addr { return network.Gateway(a.Subnet) }

// DNSListen returns the loopback address of the daemon's DNS listener.
func (a Allocation) DNSListen() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(a.DNSPort))
}

// GuestDNS returns the daemon's DNS listener on the bridge gateway.
func (a Allocation) GuestDNS() netip.AddrPort {
	return netip.AddrPortFrom(a.Gateway(), uint16(a.GuestDNSPort))
}

// Network returns the network.Config of the allocation.
func (a Allocation) Network() network.Config {
	return network.Config{Bridge: a.Bridge, Subnet: a.Subnet, TAPPrefix: a.TAPPrefix}
}

// NAT returns the nat.Config of the allocation (backend detected).
func (a Allocation) NAT() nat.Config {
	return nat.Config{Subnet: a.Subnet, Bridge: a.Bridge, Chains: a.Chains, DNSPort: a.GuestDNSPort}
}

// TAPName returns the name of a VM's TAP under this allocation.
func (a Allocation) TAPName(vmID string) string { return network.TAPNameFor(a.TAPPrefix, vmID) }

// Validate checks every field, so a record damaged or edited by hand is
// refused before any of it reaches netlink, iptables or resolvectl.
func (a Allocation) Validate() error {
	if err := a.validate(); err != nil {
		return fmt.Errorf("allocation of %s: %w", a.User, err)
	}
	return nil
}

func (a Allocation) validate() error {
	if a.Version != Version {
		return fmt.Errorf("record version %d, this banger reads %d: run `sudo banger system setup` again", a.Version, Version)
	}
	if err := ValidateUser(a.User); err != nil {
		return err
	}
	if a.UID < 0 {
		return fmt.Errorf("uid %d out of range", a.UID)
	}
	if a.Index < 0 {
		return fmt.Errorf("index %d out of range", a.Index)
	}
	if err := network.ValidateIfName(a.Bridge); err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	if err := network.ValidateSubnet(a.Subnet); err != nil {
		return err
	}
	if err := network.ValidateTAPPrefix(a.TAPPrefix); err != nil {
		return err
	}
	if err := a.Chains.Validate(); err != nil {
		return err
	}
	for _, p := range []int{a.DNSPort, a.GuestDNSPort} {
		if p < 1024 || p > 65535 {
			return fmt.Errorf("dns port %d: want 1024 to 65535", p)
		}
	}
	if err := validateZone(a.Zone); err != nil {
		return err
	}
	if a.Index == 0 {
		// Root's own (never a record: root's bangerd plumbs in process)
		// takes its bridge and subnet from its configuration; a user's
		// record may not claim index 0.
		if d := Default(); a.UID != 0 && (a.Bridge != d.Bridge || a.TAPPrefix != d.TAPPrefix || a.Chains != d.Chains) {
			return fmt.Errorf("index 0 is the default allocation's, with bridge %s", d.Bridge)
		}
		return nil
	}
	if a.Bridge != bridgeName(a.Index) || a.TAPPrefix != tapPrefix(a.Index) || a.Chains != nat.ChainsWithPrefix(chainPrefix(a.Index)) {
		return fmt.Errorf("names do not match index %d (want bridge %s, tap prefix %s, chains %s-*)", a.Index, bridgeName(a.Index), tapPrefix(a.Index), chainPrefix(a.Index))
	}
	return nil
}

// ValidateUser checks a user name as banger takes it: 1 to 32 characters,
// lowercase letters, digits, '_', '-' and '.', starting with a letter or
// '_' (Debian's default rule, with '.'). It keeps names out of paths and
// argv syntax (the record's file name, sudoers).
func ValidateUser(name string) error {
	switch {
	case name == "" || len(name) > 32:
		return fmt.Errorf("user name %q: want 1 to 32 characters", name)
	case !(name[0] >= 'a' && name[0] <= 'z' || name[0] == '_'):
		return fmt.Errorf("user name %q: must start with a lowercase letter or '_'", name)
	case strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789_-.") != "":
		return fmt.Errorf("user name %q: only lowercase letters, digits, '_', '-' and '.' are supported", name)
	}
	return nil
}

// isLabel reports whether s is a DNS label banger uses: 1 to 63 of a-z, 0-9
// and '-', not starting or ending with '-' (the rule for VM names).
func isLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == ""
}

// zoneFor returns the zone of a user: "USER.vm." when the name is a DNS
// label, else "uUID.vm.".
func zoneFor(user string, uid int) string {
	if isLabel(user) {
		return user + "." + DefaultZone
	}
	return fmt.Sprintf("u%d.%s", uid, DefaultZone)
}

func validateZone(z string) error {
	if z == DefaultZone {
		return nil
	}
	label, ok := strings.CutSuffix(z, "."+DefaultZone)
	if !ok || !isLabel(label) {
		return fmt.Errorf("zone %q: want %q or LABEL.%s", z, DefaultZone, DefaultZone)
	}
	return nil
}

// ZoneLabel returns the label a user's zone adds under "vm." ("alice" for
// "alice.vm."), or "" for the default zone. A root VM of that name would be
// shadowed on the host by the user's zone, so bangerd as root refuses it.
func (a Allocation) ZoneLabel() string {
	label, _ := strings.CutSuffix(a.Zone, "."+DefaultZone)
	if a.Zone == DefaultZone {
		return ""
	}
	return label
}
