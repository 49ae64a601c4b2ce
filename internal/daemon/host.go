package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"

	"banger/internal/config"
	"banger/internal/disk"
	"banger/internal/dns"
	"banger/internal/firecracker"
	"banger/internal/nat"
	"banger/internal/network"
	"banger/internal/preflight"
	"banger/internal/system"
)

// HostDeps builds the real host layers from the configuration. The returned
// function releases what they hold (the DNS listeners).
func HostDeps(ctx context.Context, cfg *config.Loaded, log *slog.Logger) (Deps, func(), error) {
	subnet, err := netip.ParsePrefix(cfg.Subnet)
	if err != nil {
		return Deps{}, nil, fmt.Errorf("config subnet: %w", err)
	}
	subnet = subnet.Masked()
	paths := cfg.Paths

	srv, records, resolver, err := hostDNS(cfg, subnet, log)
	if err != nil {
		return Deps{}, nil, err
	}

	netMgr, err := network.New(network.Config{Bridge: cfg.Bridge, Subnet: subnet}, network.Deps{Logger: log.With("component", "network")})
	if err != nil {
		srv.Close()
		return Deps{}, nil, err
	}
	fw, err := nat.New(nat.Config{Subnet: subnet, Bridge: cfg.Bridge, DNSPort: cfg.DNSGuestPort}, nat.Deps{Runner: system.Privileged(), Logger: log.With("component", "nat")})
	if err != nil {
		srv.Close()
		return Deps{}, nil, err
	}
	keys := &sshKeys{paths: paths}
	binary, kind := preflight.ResolveVMM(cfg.VMM)
	log.Info("vmm chosen", "binary", binary, "kind", kind, "configured", cfg.VMM)
	vmm := &hostVMM{
		drv:    firecracker.New(firecracker.Deps{Log: log.With("component", "vmm")}),
		binary: binary, kind: kind, sudo: cfg.VMMSudo,
	}
	deps := Deps{
		Log:      log,
		VMM:      vmm,
		Network:  &hostNetwork{mgr: netMgr, nat: fw, subnet: subnet, afterBridge: records.listenOnBridge},
		Disks:    &hostDisks{m: disk.New(disk.Deps{Runner: system.Plain(), Log: log.With("component", "disk")}), keys: keys},
		DNS:      records,
		Resolver: resolver,
		Guest:    &hostGuest{keys: keys},
		Preflight: preflight.New(preflight.Config{VMMBinary: binary, VMMKind: kind, VMMReason: preflight.VMMReason(cfg.VMM, kind),
			DataDir: paths.DataDir, Reflink: disk.ReflinkSupported, Version: vmm.version}),
		Bootstrap: &hostBootstrap{cacheDir: filepath.Join(paths.CacheDir, "bootstrap"), log: log.With("component", "bootstrap")},
	}
	return deps, func() { srv.Close() }, nil
}

// hostDNS starts the DNS server on the loopback listener and prepares the
// guests' listener and the host resolver integration.
func hostDNS(cfg *config.Loaded, subnet netip.Prefix, log *slog.Logger) (*dns.Server, *dnsRecords, HostResolver, error) {
	gw := network.Gateway(subnet)
	upstreams, err := dns.HostUpstreams()
	if err != nil {
		log.Warn("reading the host's resolvers; guests can resolve only .vm names", "err", err)
	}
	srv, err := dns.New(dns.Config{Subnet: subnet, Upstreams: upstreams, AllowedAddrs: []netip.Addr{gw}}, log.With("component", "dns"))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("creating the dns server: %w", err)
	}
	bound, err := srv.Listen(cfg.DNSListen, dns.Authoritative)
	if err != nil {
		srv.Close()
		return nil, nil, nil, fmt.Errorf("%w (change dns_listen in %s if the port is taken)", err, cfg.Paths.ConfigFile)
	}
	records := &dnsRecords{srv: srv, guestAddr: netip.AddrPortFrom(gw, uint16(cfg.DNSGuestPort)).String(), log: log}
	// The host's resolver is pointed at the address really bound (a
	// dns_listen port of 0 takes a free one).
	hc, err := dns.HostConfigFor(cfg.Bridge, subnet, bound.String(), cfg.DNSGuestPort)
	if err != nil {
		srv.Close()
		return nil, nil, nil, err
	}
	return srv, records, &hostResolver{cfg: hc, deps: dns.HostDeps{Privileged: system.Privileged(), Plain: system.Plain()}}, nil
}
