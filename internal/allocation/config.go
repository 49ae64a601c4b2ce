package allocation

import (
	"fmt"
	"net/netip"

	"banger/internal/config"
)

// ForConfig returns the allocation a bangerd running as uid (named user)
// works in. Root's is the default allocation with the bridge, subnet and
// guest DNS port of its configuration; a user's is their record from
// `sudo banger system setup`, and a configuration that sets those keys to
// other values is refused, since only setup may change them.
func (r Registry) ForConfig(cfg *config.Loaded, user string, uid int) (Allocation, error) {
	if uid == 0 {
		a := Default()
		a.Bridge = cfg.Bridge
		subnet, err := netip.ParsePrefix(cfg.Subnet)
		if err != nil {
			return Allocation{}, fmt.Errorf("config subnet: %w", err)
		}
		a.Subnet = subnet.Masked()
		a.GuestDNSPort = cfg.DNSGuestPort
		if err := a.Validate(); err != nil {
			return Allocation{}, fmt.Errorf("%w (check bridge, subnet and dns_guest_port in %s)", err, cfg.Paths.ConfigFile)
		}
		return a, nil
	}
	a, err := r.ForUser(user, uid)
	if err != nil {
		return Allocation{}, err
	}
	for _, k := range []struct {
		key, configured, allocated string
	}{
		{"bridge", cfg.Bridge, a.Bridge},
		{"subnet", cfg.Subnet, a.Subnet.String()},
		{"dns_guest_port", fmt.Sprint(cfg.DNSGuestPort), fmt.Sprint(a.GuestDNSPort)},
	} {
		if cfg.Source(k.key) != config.SourceDefault && k.configured != k.allocated {
			return Allocation{}, fmt.Errorf("config %s is %s, but %s's allocation from `sudo banger system setup` is %s: remove %s from %s (or its BANGER_ variable); only setup assigns it",
				k.key, k.configured, user, k.allocated, k.key, cfg.Paths.ConfigFile)
		}
	}
	return a, nil
}
