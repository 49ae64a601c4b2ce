package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"

	"banger/internal/network"
	"banger/internal/vm"
)

// hostNetwork is the allocation's bridge, TAPs and NAT. Changes go
// through the plumbing (the privileged helper for a user); reads (TAPs,
// whether the bridge is up) are plain netlink.
type hostNetwork struct {
	setup       *hostSetup
	mgr         *network.Manager // reads only
	afterBridge func() error
	made        atomic.Bool // this daemon made the bridge and NAT
}

// Ensure makes the bridge and the NAT rules exist. After this daemon made
// them once, a bridge that is still up is trusted, so a create crosses the
// privilege boundary only for its TAP.
func (h *hostNetwork) Ensure(ctx context.Context) error {
	if h.setup.err != nil {
		return h.setup.err
	}
	if !h.made.Load() || !h.mgr.BridgeReady() {
		if err := h.setup.plumb.BridgeUp(ctx); err != nil {
			return err
		}
		if err := h.setup.plumb.NATUp(ctx); err != nil {
			return err
		}
		h.made.Store(true)
	}
	return h.afterBridge()
}

func (h *hostNetwork) Allocation() string {
	if h.setup.err != nil {
		return ""
	}
	a := h.setup.alloc
	return fmt.Sprintf("bridge %s, subnet %s, zone %s", a.Bridge, a.Subnet, a.Zone)
}

func (h *hostNetwork) Allocate(taken []netip.Addr) (netip.Addr, error) {
	if h.setup.err != nil {
		return netip.Addr{}, h.setup.err
	}
	return network.Allocate(h.setup.alloc.Subnet, taken)
}

func (h *hostNetwork) Info(ip netip.Addr) NetInfo {
	subnet := h.setup.alloc.Subnet
	gw := network.Gateway(subnet)
	return NetInfo{IP: ip, Gateway: gw, PrefixLen: subnet.Bits(), Nameserver: gw}
}

func (h *hostNetwork) TAPName(id string) string { return h.setup.alloc.TAPName(id) }

func (h *hostNetwork) MAC(id string) string { return network.GuestMAC(id).String() }

func (h *hostNetwork) CreateTAP(ctx context.Context, v *vm.VM) error {
	if h.setup.err != nil {
		return h.setup.err
	}
	return h.setup.plumb.TAPAdd(ctx, v.TAP, network.TAPMAC(v.ID))
}

func (h *hostNetwork) DeleteTAP(ctx context.Context, name string) error {
	if h.setup.err != nil {
		return h.setup.err
	}
	return h.setup.plumb.TAPDel(ctx, name)
}

func (h *hostNetwork) TAPs(ctx context.Context) ([]string, error) {
	if h.setup.err != nil {
		return nil, nil
	}
	taps, err := h.mgr.ListTAPs(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(taps))
	for _, t := range taps {
		names = append(names, t.Name)
	}
	return names, nil
}
