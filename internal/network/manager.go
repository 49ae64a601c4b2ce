package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// Config says which bridge, subnet and TAP names banger uses. Zero fields
// take the defaults (DefaultBridge, DefaultSubnet, TAPPrefix); a user's
// allocation sets all three.
type Config struct {
	Bridge string
	Subnet netip.Prefix
	// TAPPrefix starts the name of every TAP of this bridge; the Manager
	// creates, deletes and lists only TAPs named with it.
	TAPPrefix string
}

// Deps are the Manager's collaborators. A nil Links means real netlink; a nil
// Logger discards.
type Deps struct {
	Links  Links
	Logger *slog.Logger
}

// TAP describes one of banger's TAP devices as found on the host.
type TAP struct {
	Name   string
	MAC    net.HardwareAddr
	Master string // empty when not attached to a bridge
	Up     bool
	Owner  int
}

// Manager makes and removes banger's bridge and TAPs.
type Manager struct {
	cfg   Config
	links Links
	log   *slog.Logger
}

// New validates cfg, fills in its defaults and returns a Manager.
func New(cfg Config, deps Deps) (*Manager, error) {
	if cfg.Bridge == "" {
		cfg.Bridge = DefaultBridge
	}
	if !cfg.Subnet.IsValid() {
		cfg.Subnet = DefaultSubnet
	}
	if cfg.TAPPrefix == "" {
		cfg.TAPPrefix = TAPPrefix
	}
	if err := ValidateSubnet(cfg.Subnet); err != nil {
		return nil, fmt.Errorf("configuring network: %w", err)
	}
	if err := ValidateIfName(cfg.Bridge); err != nil {
		return nil, fmt.Errorf("configuring network: bridge: %w", err)
	}
	if err := ValidateTAPPrefix(cfg.TAPPrefix); err != nil {
		return nil, fmt.Errorf("configuring network: %w", err)
	}
	if deps.Links == nil {
		deps.Links = Netlink{}
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{cfg: cfg, links: deps.Links, log: deps.Logger}, nil
}

// Config returns the configuration in effect, defaults filled in.
func (m *Manager) Config() Config { return m.cfg }

// Gateway returns the bridge's address, which guests use as router and resolver.
func (m *Manager) Gateway() netip.Addr { return Gateway(m.cfg.Subnet) }

// GatewayPrefix returns the bridge's address with the subnet's prefix length.
func (m *Manager) GatewayPrefix() netip.Prefix {
	return netip.PrefixFrom(m.Gateway(), m.cfg.Subnet.Bits())
}

// EnsureBridge makes the bridge exist, carry the gateway address and be up.
// Before adding the address it checks that no other link or route already
// uses the subnet, and fails naming the clash and the setting to change.
func (m *Manager) EnsureBridge(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ensuring bridge %s: %w", m.cfg.Bridge, err)
	}
	br, err := m.links.Link(m.cfg.Bridge)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := m.checkClash(); err != nil {
			return err
		}
		if err := m.links.AddBridge(m.cfg.Bridge, bridgeMAC(m.cfg.Bridge)); err != nil {
			return fmt.Errorf("ensuring bridge: %w", err)
		}
		m.log.Info("created bridge", "bridge", m.cfg.Bridge, "subnet", m.cfg.Subnet.String())
		br = Link{Name: m.cfg.Bridge, Kind: "bridge"}
	case err != nil:
		return fmt.Errorf("ensuring bridge: %w", err)
	case br.Kind != "bridge":
		return fmt.Errorf("ensuring bridge %s: a %s link of that name exists; remove it or set `bridge` in banger's config.toml to another name", m.cfg.Bridge, br.Kind)
	}
	if !slices.Contains(br.Addrs, m.GatewayPrefix()) {
		if err := m.checkClash(); err != nil {
			return err
		}
		if err := m.links.AddAddr(m.cfg.Bridge, m.GatewayPrefix()); err != nil {
			return fmt.Errorf("ensuring bridge: %w", err)
		}
	}
	if !br.Up {
		if err := m.links.SetUp(m.cfg.Bridge); err != nil {
			return fmt.Errorf("ensuring bridge: %w", err)
		}
	}
	return nil
}

// checkClash fails when an address or route outside the bridge overlaps the
// subnet: using it would cut the host off from that network.
func (m *Manager) checkClash() error {
	links, err := m.links.List()
	if err != nil {
		return fmt.Errorf("checking subnet %v for clashes: %w", m.cfg.Subnet, err)
	}
	var clashes []string
	for _, l := range links {
		if l.Name == m.cfg.Bridge {
			continue
		}
		for _, a := range l.Addrs {
			if a.Overlaps(m.cfg.Subnet) {
				clashes = append(clashes, fmt.Sprintf("address %v on %s", a, l.Name))
			}
		}
	}
	routes, err := m.links.Routes()
	if err != nil {
		return fmt.Errorf("checking subnet %v for clashes: %w", m.cfg.Subnet, err)
	}
	for _, r := range routes {
		if r.Dev != m.cfg.Bridge && r.Dst.Bits() > 0 && r.Dst.Overlaps(m.cfg.Subnet) {
			clashes = append(clashes, fmt.Sprintf("route %v via %s", r.Dst, r.Dev))
		}
	}
	if len(clashes) > 0 {
		return fmt.Errorf("subnet %v clashes with %s: set `subnet` in banger's config.toml to a free range", m.cfg.Subnet, strings.Join(clashes, ", "))
	}
	return nil
}

// DeleteBridge removes the bridge. A missing bridge is not an error; a link
// of that name that is not a bridge is left alone and reported. TAPs still
// attached stay, detached.
func (m *Manager) DeleteBridge(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("deleting bridge %s: %w", m.cfg.Bridge, err)
	}
	cur, err := m.links.Link(m.cfg.Bridge)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deleting bridge %s: %w", m.cfg.Bridge, err)
	}
	if cur.Kind != "bridge" {
		return fmt.Errorf("deleting bridge %s: it is a %s, not a bridge; leaving it alone", m.cfg.Bridge, cur.Kind)
	}
	if err := m.links.Delete(m.cfg.Bridge); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting bridge: %w", err)
	}
	return nil
}

// CreateTAP makes the TAP name exist with the host-side address mac (use
// TAPMAC), attached to the bridge and up. ownerUID lets that user's VMM open
// it without privileges; -1 leaves it to root. An existing TAP is repaired
// in place; one with a different owner is recreated, since the owner of a
// persistent TAP cannot change. EnsureBridge must have run.
func (m *Manager) CreateTAP(ctx context.Context, name string, mac net.HardwareAddr, ownerUID int) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("creating tap %s: %w", name, err)
	}
	if err := ValidateTAPName(m.cfg.TAPPrefix, name); err != nil {
		return fmt.Errorf("creating tap: %w", err)
	}
	want := max(ownerUID, 0) // the kernel records "no owner" as root
	cur, err := m.links.Link(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		cur = Link{}
	case err != nil:
		return fmt.Errorf("creating tap %s: %w", name, err)
	case cur.Kind != "tuntap":
		return fmt.Errorf("creating tap %s: a %s link of that name exists", name, cur.Kind)
	case cur.Owner != want:
		m.log.Warn("recreating tap with new owner", "tap", name, "owner", cur.Owner, "want", want)
		if err := m.links.Delete(name); err != nil {
			return fmt.Errorf("creating tap %s: %w", name, err)
		}
		cur = Link{}
	}
	if cur.Name == "" {
		if err := m.links.AddTAP(name, ownerUID); err != nil {
			return fmt.Errorf("creating tap: %w", err)
		}
	}
	err = m.repairTAP(name, cur, mac)
	if err != nil && cur.Name == "" {
		// Do not leave a half-made TAP behind.
		err = errors.Join(err, m.links.Delete(name))
	}
	if err != nil {
		return fmt.Errorf("creating tap %s: %w", name, err)
	}
	return nil
}

func (m *Manager) repairTAP(name string, cur Link, mac net.HardwareAddr) error {
	if len(mac) > 0 && !bytes.Equal(cur.MAC, mac) {
		if err := m.links.SetMAC(name, mac); err != nil {
			return err
		}
	}
	if cur.Master != m.cfg.Bridge {
		if err := m.links.SetMaster(name, m.cfg.Bridge); err != nil {
			return err
		}
	}
	if !cur.Up {
		if err := m.links.SetUp(name); err != nil {
			return err
		}
	}
	return nil
}

// DeleteTAP removes a TAP. A missing TAP is not an error.
func (m *Manager) DeleteTAP(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("deleting tap %s: %w", name, err)
	}
	if err := ValidateTAPName(m.cfg.TAPPrefix, name); err != nil {
		return fmt.Errorf("deleting tap: %w", err)
	}
	cur, err := m.links.Link(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deleting tap %s: %w", name, err)
	}
	if cur.Kind != "tuntap" {
		return fmt.Errorf("deleting tap %s: it is a %s, not a tap; leaving it alone", name, cur.Kind)
	}
	if err := m.links.Delete(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting tap: %w", err)
	}
	return nil
}

// ListTAPs returns banger's TAPs: named with the TAP prefix and attached to this
// Manager's bridge or to no bridge at all (left half made). Reconcile
// compares them with the VM table to find TAPs without a VM.
func (m *Manager) ListTAPs(ctx context.Context) ([]TAP, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("listing taps: %w", err)
	}
	links, err := m.links.List()
	if err != nil {
		return nil, fmt.Errorf("listing taps: %w", err)
	}
	var out []TAP
	for _, l := range links {
		if l.Kind != "tuntap" || !strings.HasPrefix(l.Name, m.cfg.TAPPrefix) {
			continue
		}
		if l.Master != "" && l.Master != m.cfg.Bridge {
			continue
		}
		out = append(out, TAP{Name: l.Name, MAC: l.MAC, Master: l.Master, Up: l.Up, Owner: l.Owner})
	}
	slices.SortFunc(out, func(a, b TAP) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// State renders the bridge and banger's TAPs as one canonical string (see
// Render), for tests, `banger doctor` and debugging.
func (m *Manager) State(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("reading network state: %w", err)
	}
	links, err := m.links.List()
	if err != nil {
		return "", fmt.Errorf("reading network state: %w", err)
	}
	return Render(links, m.cfg.Bridge, m.cfg.TAPPrefix), nil
}

// BridgeReady reports whether the bridge exists, is up and holds the
// gateway address: what EnsureBridge makes. It only reads.
func (m *Manager) BridgeReady() bool {
	br, err := m.links.Link(m.cfg.Bridge)
	return err == nil && br.Kind == "bridge" && br.Up && slices.Contains(br.Addrs, m.GatewayPrefix())
}
