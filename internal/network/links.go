package network

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Link is the part of a network interface's state that banger looks at.
type Link struct {
	Name string
	// Kind is the netlink link type: "bridge", "tuntap", "veth", "device", ...
	Kind string
	// Master names the bridge the link is attached to, or is empty.
	Master string
	MAC    net.HardwareAddr
	Up     bool
	// Owner is the uid allowed to open a TAP without CAP_NET_ADMIN, or -1
	// when there is none or the link is not a TAP.
	Owner int
	// Addrs are the link's IPv4 addresses with their prefix lengths.
	Addrs []netip.Prefix
}

// Route is an IPv4 unicast route of any routing table, reduced to what the
// subnet clash checks need.
type Route struct {
	Dst netip.Prefix
	Dev string
}

// Links is the slice of the kernel's link table banger uses. Netlink is the
// real implementation; FakeLinks models it for tests. Methods that take a
// link name fail with an error matching fs.ErrNotExist when it is absent.
type Links interface {
	// Link returns one link with its addresses.
	Link(name string) (Link, error)
	// List returns every link with its addresses.
	List() ([]Link, error)
	// Routes returns the IPv4 unicast routes of every table (policy-routing
	// VPNs keep theirs outside the main table).
	Routes() ([]Route, error)
	// AddBridge creates a bridge with the given MAC address, down.
	AddBridge(name string, mac net.HardwareAddr) error
	// AddTAP creates a persistent, single-queue TAP owned by owner (-1:
	// root), with no group, so that only its owner (or CAP_NET_ADMIN) can
	// attach to it.
	AddTAP(name string, owner int) error
	// Delete removes a link.
	Delete(name string) error
	// SetMAC sets a link's MAC address.
	SetMAC(name string, mac net.HardwareAddr) error
	// SetMaster attaches a link to a bridge.
	SetMaster(name, master string) error
	// SetUp brings a link up.
	SetUp(name string) error
	// AddAddr adds an IPv4 address to a link.
	AddAddr(name string, addr netip.Prefix) error
}

// Netlink implements Links with netlink in the caller's network namespace.
type Netlink struct{}

var _ Links = Netlink{}

func (Netlink) link(name string) (netlink.Link, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("link %s: %w", name, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("looking up link %s: %w", name, err)
	}
	return l, nil
}

// Link implements Links.
func (n Netlink) Link(name string) (Link, error) {
	l, err := n.link(name)
	if err != nil {
		return Link{}, err
	}
	addrs, err := netlink.AddrList(l, unix.AF_INET)
	if err != nil {
		return Link{}, fmt.Errorf("listing addresses of %s: %w", name, err)
	}
	out := convertLink(l, nil)
	out.Addrs = convertAddrs(addrs)
	if m := l.Attrs().MasterIndex; m != 0 {
		if ml, err := netlink.LinkByIndex(m); err == nil {
			out.Master = ml.Attrs().Name
		}
	}
	return out, nil
}

// List implements Links. A dump interrupted by a concurrent change is retried.
func (Netlink) List() ([]Link, error) {
	var links []netlink.Link
	var addrs []netlink.Addr
	var err error
	for range 5 {
		links, err = netlink.LinkList()
		if err == nil {
			addrs, err = netlink.AddrList(nil, unix.AF_INET)
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	byIndex := map[int][]netlink.Addr{}
	for _, a := range addrs {
		byIndex[a.LinkIndex] = append(byIndex[a.LinkIndex], a)
	}
	out := make([]Link, 0, len(links))
	for _, l := range links {
		c := convertLink(l, names)
		c.Addrs = convertAddrs(byIndex[l.Attrs().Index])
		out = append(out, c)
	}
	return out, nil
}

// Routes implements Links.
func (Netlink) Routes() ([]Route, error) {
	var routes []netlink.Route
	var err error
	all := &netlink.Route{Table: unix.RT_TABLE_UNSPEC}
	for range 5 {
		routes, err = netlink.RouteListFiltered(unix.AF_INET, all, netlink.RT_FILTER_TABLE)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	out := make([]Route, 0, len(routes))
	for _, r := range routes {
		if r.Dst == nil || r.Type != unix.RTN_UNICAST {
			continue // default route; local, broadcast, throw and unreachable entries
		}
		p, ok := prefixOf(r.Dst)
		if !ok {
			continue
		}
		dev := ""
		if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil {
			dev = l.Attrs().Name
		}
		out = append(out, Route{Dst: p, Dev: dev})
	}
	return out, nil
}

// AddBridge implements Links.
func (Netlink) AddBridge(name string, mac net.HardwareAddr) error {
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, HardwareAddr: mac}}
	if err := netlink.LinkAdd(br); err != nil {
		return fmt.Errorf("adding bridge %s: %w", name, permHint(err))
	}
	return nil
}

// tunDevice is the TUN/TAP clone device.
const tunDevice = "/dev/net/tun"

// AddTAP implements Links. The TAP has no packet-information header and
// allows a virtio-net header, as Firecracker and QEMU open it. It is made
// with the TUN ioctls rather than netlink's Tuntap, which always sets a
// group (root's by default): the kernel lets a user attach to a TAP only if
// they are its owner and, when it has a group, in that group, so a TAP made
// for a user's VMM gets an owner and no group. A TAP without owner gets
// root as owner, so that no user can attach to it.
func (Netlink) AddTAP(name string, owner int) error {
	fd, err := unix.Open(tunDevice, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("adding tap %s: opening %s: %w", name, tunDevice, permHint(err))
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("adding tap %s: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR | unix.IFF_ONE_QUEUE)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return fmt.Errorf("adding tap %s: %w", name, permHint(err))
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOWNER, max(owner, 0)); err != nil {
		return fmt.Errorf("adding tap %s: setting owner %d: %w", name, owner, err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1); err != nil {
		return fmt.Errorf("adding tap %s: making it persistent: %w", name, err)
	}
	return nil
}

// Delete implements Links.
func (n Netlink) Delete(name string) error {
	l, err := n.link(name)
	if err != nil {
		return err
	}
	if err := netlink.LinkDel(l); err != nil {
		return fmt.Errorf("deleting link %s: %w", name, permHint(err))
	}
	return nil
}

// SetMAC implements Links.
func (n Netlink) SetMAC(name string, mac net.HardwareAddr) error {
	l, err := n.link(name)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetHardwareAddr(l, mac); err != nil {
		return fmt.Errorf("setting mac of %s to %s: %w", name, mac, permHint(err))
	}
	return nil
}

// SetMaster implements Links.
func (n Netlink) SetMaster(name, master string) error {
	l, err := n.link(name)
	if err != nil {
		return err
	}
	m, err := n.link(master)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetMaster(l, m); err != nil {
		return fmt.Errorf("attaching %s to %s: %w", name, master, permHint(err))
	}
	return nil
}

// SetUp implements Links.
func (n Netlink) SetUp(name string) error {
	l, err := n.link(name)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("bringing up %s: %w", name, permHint(err))
	}
	return nil
}

// AddAddr implements Links. Adding an address that is already there succeeds.
func (n Netlink) AddAddr(name string, addr netip.Prefix) error {
	l, err := n.link(name)
	if err != nil {
		return err
	}
	ipn := &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), addr.Addr().BitLen())}
	if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: ipn}); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("adding address %v to %s: %w", addr, name, permHint(err))
	}
	return nil
}

// permHint adds the fix to a permission error: changing links needs
// CAP_NET_ADMIN.
func permHint(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%w (changing network links needs CAP_NET_ADMIN: run bangerd as root, or grant it with `sudo setcap cap_net_admin+ep $(command -v bangerd)`)", err)
	}
	return err
}

func convertLink(l netlink.Link, names map[int]string) Link {
	a := l.Attrs()
	out := Link{
		Name:  a.Name,
		Kind:  l.Type(),
		MAC:   append(net.HardwareAddr(nil), a.HardwareAddr...),
		Up:    a.Flags&net.FlagUp != 0,
		Owner: -1,
	}
	if names != nil && a.MasterIndex != 0 {
		out.Master = names[a.MasterIndex]
	}
	if t, ok := l.(*netlink.Tuntap); ok && t.Owner != ^uint32(0) {
		out.Owner = int(t.Owner)
	}
	return out
}

func convertAddrs(addrs []netlink.Addr) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok {
			out = append(out, p)
		}
	}
	return out
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), ones), true
}
