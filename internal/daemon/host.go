package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"

	"banger/internal/allocation"
	"banger/internal/config"
	"banger/internal/disk"
	"banger/internal/dns"
	"banger/internal/firecracker"
	"banger/internal/network"
	"banger/internal/preflight"
	"banger/internal/system"
)

// HostDeps builds the real host layers from the configuration. The returned
// function releases what they hold (the DNS listeners).
func HostDeps(ctx context.Context, cfg *config.Loaded, log *slog.Logger) (Deps, func(), error) {
	paths := cfg.Paths
	setup := newHostSetup(cfg, log)
	srv, records, resolver, err := hostDNS(cfg, setup, log)
	if err != nil {
		return Deps{}, nil, err
	}
	netMgr, err := network.New(setup.alloc.Network(), network.Deps{Logger: log.With("component", "network")})
	if err != nil && setup.err == nil {
		srv.Close()
		return Deps{}, nil, err
	}
	keys := &sshKeys{paths: paths, zone: setup.alloc.Zone}
	exe, _ := os.Executable()
	rt, err := FindRuntime(cfg.RuntimeBundle, exe)
	if err != nil {
		log.Warn("reading the runtime bundle; images come from `banger image bootstrap` only", "err", err)
	} else if rt != nil {
		log.Info("runtime bundle in use", "dir", rt.Dir, "source", string(rt.Source), "vmm", rt.VMM())
	}
	binary, kind := preflight.ResolveVMMWithBundle(cfg.VMM, rt.VMM())
	log.Info("vmm chosen", "binary", binary, "kind", kind, "configured", cfg.VMM)
	vmm := &hostVMM{
		drv:    firecracker.New(firecracker.Deps{Log: log.With("component", "vmm")}),
		binary: binary,
	}
	deps := Deps{
		Log:      log,
		VMM:      vmm,
		Network:  &hostNetwork{setup: setup, mgr: netMgr, afterBridge: records.listenOnBridge},
		Disks:    &hostDisks{m: disk.New(disk.Deps{Runner: system.Plain(), Log: log.With("component", "disk"), Templates: paths.DiskTemplates()}), keys: keys, dataDir: paths.DataDir},
		DNS:      records,
		Resolver: resolver,
		Runtime:  rt,
		Guest:    newHostGuest(keys),
		Preflight: preflight.New(preflight.Config{VMMBinary: binary, VMMKind: kind, VMMReason: preflight.VMMReason(cfg.VMM, kind),
			DataDir: paths.DataDir, Reflink: disk.ReflinkSupported, Version: vmm.version, Setup: setup.check, Optional: rt.optional()}),
		Bootstrap: &hostBootstrap{cacheDir: bootstrapCacheDir(paths), log: log.With("component", "bootstrap")},
	}
	return deps, func() { srv.Close() }, nil
}

// hostDNS starts the DNS server for the allocation's zone: on the loopback
// listener for the host (dns_listen as root, the allocation's port for a
// user unless dns_listen is set), on the bridge for the guests once it
// exists; and prepares the host resolver integration.
func hostDNS(cfg *config.Loaded, setup *hostSetup, log *slog.Logger) (*dns.Server, *dnsRecords, HostResolver, error) {
	a := setup.alloc
	upstreams, err := dns.HostUpstreams()
	if err != nil {
		log.Warn("reading the host's resolvers; guests can resolve only .vm names", "err", err)
	}
	zone, aliases := allocation.DefaultZone, []string(nil)
	if setup.err == nil && a.Zone != allocation.DefaultZone {
		// The user's guests call each other NAME.vm; the host NAME.USER.vm.
		zone, aliases = a.Zone, []string{allocation.DefaultZone}
	}
	srv, err := dns.New(dns.Config{Zone: zone, Aliases: aliases, Subnet: a.Subnet, Upstreams: upstreams, AllowedAddrs: []netip.Addr{a.Gateway()}}, log.With("component", "dns"))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("creating the dns server: %w", err)
	}
	records := &dnsRecords{srv: srv, guestAddr: a.GuestDNS().String(), log: log}
	if setup.err != nil {
		// Not set up: no port of its own to listen on.
		return srv, records, nil, nil
	}
	listen := cfg.DNSListen
	if !setup.root && cfg.Source("dns_listen") == config.SourceDefault {
		listen = a.DNSListen().String()
	}
	bound, err := srv.Listen(listen, dns.Authoritative)
	if err != nil {
		srv.Close()
		return nil, nil, nil, fmt.Errorf("%w (change dns_listen in %s if the port is taken)", err, cfg.Paths.ConfigFile)
	}
	// The host's resolver is pointed at the address really bound (a
	// dns_listen port of 0 takes a free one).
	hc, err := dns.HostConfigFor(a.Bridge, a.Subnet, bound.String(), a.GuestDNSPort)
	if err != nil {
		srv.Close()
		return nil, nil, nil, err
	}
	hc.Zone = zone
	return srv, records, &hostResolver{cfg: hc, setup: setup, deps: dns.HostDeps{Privileged: system.Privileged(), Plain: system.Plain()}}, nil
}
