package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"

	"banger/internal/allocation"
	"banger/internal/api"
	"banger/internal/dns"
)

// dnsRecords feeds the DNS server from the VM table and opens the guests'
// listener on the bridge address once the bridge exists.
type dnsRecords struct {
	srv       *dns.Server
	guestAddr string
	log       *slog.Logger
	// users lists the users' zones, whose labels root's VMs cannot use.
	users   allocation.Registry
	mu      sync.Mutex
	guestUp bool
}

// listenOnBridge opens the guests' resolver once the bridge exists. It acts
// once per daemon.
func (r *dnsRecords) listenOnBridge() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.guestUp {
		return nil
	}
	if _, err := r.srv.Listen(r.guestAddr, dns.Forwarding); err != nil {
		return fmt.Errorf("starting the guests' resolver: %w", err)
	}
	r.guestUp = true
	return nil
}

func (r *dnsRecords) Set(name string, ip netip.Addr) {
	if err := r.srv.Set(name, ip); err != nil {
		r.log.Warn("setting dns record", "vm", name, "err", err)
	}
}

func (r *dnsRecords) Remove(name string) { r.srv.Remove(name) }

func (r *dnsRecords) Replace(records map[string]netip.Addr) {
	var recs []dns.Record
	for n, ip := range records {
		recs = append(recs, dns.Record{Name: n, IP: ip})
	}
	if err := r.srv.Replace(recs); err != nil {
		r.log.Warn("rebuilding dns records", "err", err)
	}
}

func (r *dnsRecords) Zone() string { return r.srv.Zone() }

func (r *dnsRecords) Usable(name string) error {
	if r.srv.Zone() != allocation.DefaultZone {
		return nil
	}
	labels, err := r.users.ZoneLabels()
	if err != nil {
		return nil // no users set up (or none readable): nothing shadows
	}
	if slices.Contains(labels, name) {
		return fmt.Errorf("vm name %q is taken: %s.vm is the zone of the banger user %s on this host, so the host would not resolve a vm of that name; pick another name", name, name, name)
	}
	return nil
}

func (r *dnsRecords) Count() int { return r.srv.Count() }

func (r *dnsRecords) Listeners() []api.Listener {
	var out []api.Listener
	for _, l := range r.srv.Listeners() {
		out = append(out, api.Listener{Name: "dns", Network: "udp+tcp", Address: l})
	}
	return out
}

// hostResolver is `banger dns setup` on this host: systemd-resolved's
// per-link routing of the zone, or the dnsmasq snippet to install.
type hostResolver struct {
	cfg   dns.HostConfig
	setup *hostSetup
	deps  dns.HostDeps
}

func (h *hostResolver) Apply(ctx context.Context, on bool) (api.DNSSetup, error) {
	out := api.DNSSetup{Link: h.cfg.Link, Gateway: h.cfg.Gateway.String()}
	if on {
		if _, err := net.InterfaceByName(h.cfg.Link); err != nil {
			if d := dns.Detect(ctx, h.deps); d.Method == dns.MethodResolved {
				// resolved's per-link settings need the bridge, which
				// bangerd makes with the first VM.
				out.Method, out.Deferred = string(d.Method), true
				return out, nil
			}
		}
	}
	if !h.setup.root {
		if d := dns.Detect(ctx, h.deps); d.Method == dns.MethodResolved {
			return h.throughHelper(ctx, on, out)
		}
	}
	op := dns.Teardown
	if on {
		op = dns.Setup
	}
	res, err := op(ctx, h.deps, h.cfg)
	out.Method, out.Ran = string(res.Method), res.Ran
	if res.Manual != nil {
		out.Manual = &api.DNSSnippet{Path: res.Manual.Path, Content: res.Manual.Content, Apply: res.Manual.Apply}
	}
	if errors.Is(err, dns.ErrNoResolver) {
		return out, api.Errorf(api.CodePrecondition, "%v", err)
	}
	return out, err
}

// throughHelper routes (or stops routing) the user's zone to their bridge
// with systemd-resolved: per-link settings need root, so the helper makes
// them, from the user's allocation.
func (h *hostResolver) throughHelper(ctx context.Context, on bool, out api.DNSSetup) (api.DNSSetup, error) {
	out.Method = string(dns.MethodResolved)
	verb, do := "down", h.setup.plumb.DNSDown
	if on {
		verb, do = "up", h.setup.plumb.DNSUp
	}
	if err := do(ctx); err != nil {
		return out, err
	}
	out.Ran = [][]string{{"banger-helper", "dns", verb}}
	return out, nil
}
