package daemon

import (
	"context"
	"net/netip"
	"os"

	"banger/internal/nat"
	"banger/internal/network"
	"banger/internal/vm"
)

// hostNetwork is the bridge, TAPs and NAT.
type hostNetwork struct {
	mgr         *network.Manager
	nat         *nat.NAT
	subnet      netip.Prefix
	afterBridge func() error
}

func (h *hostNetwork) Ensure(ctx context.Context) error {
	if err := h.mgr.EnsureBridge(ctx); err != nil {
		return err
	}
	if err := h.nat.Up(ctx); err != nil {
		return err
	}
	return h.afterBridge()
}

func (h *hostNetwork) Allocate(taken []netip.Addr) (netip.Addr, error) {
	return network.Allocate(h.subnet, taken)
}

func (h *hostNetwork) Info(ip netip.Addr) NetInfo {
	gw := network.Gateway(h.subnet)
	return NetInfo{IP: ip, Gateway: gw, PrefixLen: h.subnet.Bits(), Nameserver: gw}
}

func (h *hostNetwork) TAPName(id string) string { return network.TAPName(id) }

func (h *hostNetwork) MAC(id string) string { return network.GuestMAC(id).String() }

func (h *hostNetwork) CreateTAP(ctx context.Context, v *vm.VM) error {
	owner := -1
	if os.Geteuid() != 0 {
		owner = os.Getuid()
	}
	return h.mgr.CreateTAP(ctx, v.TAP, network.TAPMAC(v.ID), owner)
}

func (h *hostNetwork) DeleteTAP(ctx context.Context, name string) error {
	return h.mgr.DeleteTAP(ctx, name)
}

func (h *hostNetwork) TAPs(ctx context.Context) ([]string, error) {
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
