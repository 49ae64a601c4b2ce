package privhelper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"

	"banger/internal/allocation"
	"banger/internal/dns"
	"banger/internal/nat"
	"banger/internal/network"
	"banger/internal/system"
)

// Plumbing is the privileged network work of one allocation, as bangerd
// calls it. Every method is idempotent: making what exists and removing
// what is gone succeed without a change.
type Plumbing interface {
	// Allocation returns the allocation acted on.
	Allocation() allocation.Allocation
	// CheckSetup changes nothing; it fails when the plumbing could not be
	// done (no sudo rule, no helper, a record that fails its checks).
	CheckSetup(ctx context.Context) error
	// BridgeUp makes the allocation's bridge exist with its gateway
	// address, up, refusing a subnet that clashes with a host route.
	BridgeUp(ctx context.Context) error
	// BridgeDown removes the bridge; its TAPs stay, detached.
	BridgeDown(ctx context.Context) error
	// TAPAdd makes a TAP named with the allocation's prefix, owned by the
	// allocation's user, with host-side address mac, on the bridge, up.
	TAPAdd(ctx context.Context, name string, mac net.HardwareAddr) error
	// TAPDel removes one of the allocation's TAPs.
	TAPDel(ctx context.Context, name string) error
	// NATUp makes the allocation's chains and their jumps exist and turns
	// on IPv4 forwarding; NATDown removes the chains and jumps.
	NATUp(ctx context.Context) error
	NATDown(ctx context.Context) error
	// DNSUp routes the allocation's zone and reverse zones to its daemon's
	// listener on the bridge through systemd-resolved; DNSDown reverts the
	// bridge's resolver settings.
	DNSUp(ctx context.Context) error
	DNSDown(ctx context.Context) error
}

// For returns the Plumbing a bangerd running with effective uid euid uses
// for allocation a: Direct when it is root, else the helper at helperPath
// through `sudo -n` (helperPath empty means DefaultPath).
func For(a allocation.Allocation, euid int, helperPath string, log *slog.Logger) (Plumbing, error) {
	if euid == 0 {
		record, err := nat.ForwardRecordPath(nat.DefaultForwardDir)
		if err != nil {
			return nil, err
		}
		return NewDirect(a, DirectDeps{Logger: log, ForwardRecord: record})
	}
	return &Helper{Path: helperPath, Runner: system.Plain(), alloc: a}, nil
}

// DirectDeps are Direct's collaborators. Zero values mean the host's:
// netlink, system.Plain() (the caller is root), system.LookPath,
// os.ReadFile, a discarding logger.
type DirectDeps struct {
	Links    network.Links
	Runner   system.InputRunner
	LookPath func(string) (string, error)
	ReadFile func(string) ([]byte, error)
	Logger   *slog.Logger
	// ForwardRecord is where NATUp records net.ipv4.ip_forward before
	// turning it on (nat.ForwardRecordPath); empty records nothing.
	ForwardRecord string
}

// Direct does an allocation's plumbing in-process. Its caller must hold
// the privileges: bangerd running as root, or the helper after Check.
type Direct struct {
	alloc    allocation.Allocation
	net      *network.Manager
	nat      *nat.NAT
	links    network.Links
	run      system.InputRunner
	lookPath func(string) (string, error)
}

var _ Plumbing = (*Direct)(nil)

// NewDirect validates a and returns a Direct for it.
func NewDirect(a allocation.Allocation, deps DirectDeps) (*Direct, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	if deps.Links == nil {
		deps.Links = network.Netlink{}
	}
	if deps.Runner == nil {
		deps.Runner = system.Plain()
	}
	if deps.LookPath == nil {
		deps.LookPath = system.LookPath
	}
	if deps.ReadFile == nil {
		deps.ReadFile = os.ReadFile
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	mgr, err := network.New(a.Network(), network.Deps{Links: deps.Links, Logger: deps.Logger})
	if err != nil {
		return nil, err
	}
	n, err := nat.New(a.NAT(), nat.Deps{Runner: deps.Runner, LookPath: deps.LookPath, ReadFile: deps.ReadFile, Logger: deps.Logger, ForwardRecord: deps.ForwardRecord})
	if err != nil {
		return nil, err
	}
	return &Direct{alloc: a, net: mgr, nat: n, links: deps.Links, run: deps.Runner, lookPath: deps.LookPath}, nil
}

// Allocation implements Plumbing.
func (d *Direct) Allocation() allocation.Allocation { return d.alloc }

// CheckSetup implements Plumbing: in-process there is nothing to check
// beyond what NewDirect did.
func (d *Direct) CheckSetup(ctx context.Context) error { return ctx.Err() }

// BridgeUp implements Plumbing.
func (d *Direct) BridgeUp(ctx context.Context) error {
	if err := d.net.EnsureBridge(ctx); err != nil {
		if d.alloc.Index != 0 {
			return fmt.Errorf("%w (the subnet is %s's allocation; `sudo banger system setup --remove --user %s` and setting up again picks a free one)", err, d.alloc.User, d.alloc.User)
		}
		return err
	}
	return nil
}

// BridgeDown implements Plumbing.
func (d *Direct) BridgeDown(ctx context.Context) error { return d.net.DeleteBridge(ctx) }

// TAPAdd implements Plumbing. The TAP is owned by the allocation's uid, so
// the user's VMM opens it without privileges; root's have no owner.
func (d *Direct) TAPAdd(ctx context.Context, name string, mac net.HardwareAddr) error {
	owner := d.alloc.UID
	if owner == 0 {
		owner = -1
	}
	return d.net.CreateTAP(ctx, name, mac, owner)
}

// TAPDel implements Plumbing.
func (d *Direct) TAPDel(ctx context.Context, name string) error { return d.net.DeleteTAP(ctx, name) }

// NATUp implements Plumbing.
func (d *Direct) NATUp(ctx context.Context) error { return d.nat.Up(ctx) }

// NATDown implements Plumbing.
func (d *Direct) NATDown(ctx context.Context) error { return d.nat.Down(ctx) }

// hostDNS describes the allocation to the resolver integration.
func (d *Direct) hostDNS() (dns.HostConfig, error) {
	rev, err := dns.ReverseZonesOf(d.alloc.Subnet)
	if err != nil {
		return dns.HostConfig{}, err
	}
	return dns.HostConfig{Link: d.alloc.Bridge, Gateway: d.alloc.GuestDNS(), Loopback: d.alloc.DNSListen(), Zone: d.alloc.Zone, ReverseZones: rev}, nil
}

// DNSUp implements Plumbing. It needs the bridge: resolved keeps a link's
// settings only while the link exists.
func (d *Direct) DNSUp(ctx context.Context) error {
	cfg, err := d.hostDNS()
	if err != nil {
		return fmt.Errorf("routing %s to bangerd: %w", d.alloc.Zone, err)
	}
	if _, err := d.links.Link(d.alloc.Bridge); err != nil {
		return fmt.Errorf("routing %s to bangerd: bridge %s: %w (bring the bridge up first)", d.alloc.Zone, d.alloc.Bridge, err)
	}
	return d.resolvectl(ctx, "routing "+d.alloc.Zone+" to bangerd", dns.ResolvedSetupCommands(cfg))
}

// DNSDown implements Plumbing. Without the bridge there is nothing to
// revert.
func (d *Direct) DNSDown(ctx context.Context) error {
	cfg, err := d.hostDNS()
	if err != nil {
		return fmt.Errorf("reverting resolver settings of %s: %w", d.alloc.Bridge, err)
	}
	if _, err := d.links.Link(d.alloc.Bridge); err != nil {
		return nil
	}
	return d.resolvectl(ctx, "reverting resolver settings of "+d.alloc.Bridge, dns.ResolvedTeardownCommands(cfg))
}

func (d *Direct) resolvectl(ctx context.Context, what string, cmds [][]string) error {
	bin, err := d.lookPath("resolvectl")
	if err != nil {
		return fmt.Errorf("%s: resolvectl not found; is systemd-resolved installed (`apt-get install systemd-resolved`)?: %w", what, err)
	}
	var errs []error
	for _, argv := range cmds {
		argv = append([]string{bin}, argv[1:]...)
		if err := d.run.Run(ctx, argv...); err != nil {
			errs = append(errs, err)
			break
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// Do runs one parsed request.
func Do(ctx context.Context, p Plumbing, req Request) error {
	switch req.Verb {
	case CheckSetup:
		return p.CheckSetup(ctx)
	case BridgeUp:
		return p.BridgeUp(ctx)
	case BridgeDown:
		return p.BridgeDown(ctx)
	case TAPAdd:
		return p.TAPAdd(ctx, req.TAP, req.MAC)
	case TAPDel:
		return p.TAPDel(ctx, req.TAP)
	case NATUp:
		return p.NATUp(ctx)
	case NATDown:
		return p.NATDown(ctx)
	case DNSUp:
		return p.DNSUp(ctx)
	case DNSDown:
		return p.DNSDown(ctx)
	}
	return refuse("unknown verb %q", req.Verb)
}
