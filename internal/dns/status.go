package dns

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Check is one step on the way from `getent hosts NAME.vm` to the daemon.
type Check struct {
	Name   string // "resolver", "routing", "nsswitch", "lookup"
	OK     bool
	Detail string
	// Fix says what to do when the check fails.
	Fix string
}

// HostStatus says whether host programs can resolve names in the zone and,
// when not, which step fails and how to fix it.
type HostStatus struct {
	Method Method
	Works  bool
	Checks []Check
}

// Status inspects the host without changing anything. When probe names a
// registered VM ("dev"), it also runs `getent hosts dev.vm` to confirm.
func Status(ctx context.Context, deps HostDeps, cfg HostConfig, probe string) HostStatus {
	d := Detect(ctx, deps)
	st := HostStatus{Method: d.Method}
	add := func(c Check) { st.Checks = append(st.Checks, c) }
	zone := strings.TrimSuffix(cfg.Zone, ".")

	switch d.Method {
	case MethodResolved:
		c := Check{Name: "resolver", OK: true, Detail: "systemd-resolved is running"}
		if d.ResolvedVersion > 0 {
			c.Detail = fmt.Sprintf("systemd-resolved %d is running", d.ResolvedVersion)
			if d.ResolvedVersion < minResolvedVersion {
				c.OK = false
				c.Fix = fmt.Sprintf("systemd-resolved before %d cannot reach a server on a port other than 53; use dnsmasq with %s", minResolvedVersion, DnsmasqSnippetPath)
			}
		}
		add(c)
		add(resolvedRouting(ctx, deps, cfg))
		add(resolvedNSS(deps))
	case MethodNetworkManager, MethodDnsmasq:
		name := "dnsmasq is running"
		if d.Method == MethodNetworkManager {
			name = "NetworkManager runs dnsmasq (dns=dnsmasq)"
		}
		add(Check{Name: "resolver", OK: true, Detail: name})
		add(snippetRouting(deps, d.Method, cfg))
		add(dnsmasqNSS(deps))
	default:
		add(Check{Name: "resolver", Detail: ErrNoResolver.Error(),
			Fix: fmt.Sprintf("install systemd-resolved or dnsmasq, or query the daemon directly: `dig @%s -p %d NAME.%s`", cfg.Loopback.Addr(), cfg.Loopback.Port(), zone)})
	}
	if probe != "" {
		host := probe + "." + zone
		out, err := deps.Plain.Output(ctx, "getent", "hosts", host)
		c := Check{Name: "lookup", OK: err == nil && len(strings.TrimSpace(string(out))) > 0}
		if c.OK {
			c.Detail = fmt.Sprintf("getent hosts %s: %s", host, strings.Join(strings.Fields(string(out)), " "))
		} else {
			c.Detail = fmt.Sprintf("getent hosts %s found nothing", host)
			c.Fix = "fix the failing checks above; if they all pass, check that the VM is running (`banger vm list`)"
		}
		add(c)
	}
	st.Works = len(st.Checks) > 0
	for _, c := range st.Checks {
		st.Works = st.Works && c.OK
	}
	return st
}

func resolvedRouting(ctx context.Context, deps HostDeps, cfg HostConfig) Check {
	c := Check{Name: "routing", Fix: "run `banger dns setup`"}
	dnsOut, err := deps.Plain.Output(ctx, "resolvectl", "dns", cfg.Link)
	if err != nil {
		c.Detail = fmt.Sprintf("reading resolved's servers for %s: %v", cfg.Link, err)
		c.Fix = fmt.Sprintf("start bangerd (it creates the bridge %s), then run `banger dns setup`", cfg.Link)
		return c
	}
	domOut, err := deps.Plain.Output(ctx, "resolvectl", "domain", cfg.Link)
	if err != nil {
		c.Detail = fmt.Sprintf("reading resolved's domains for %s: %v", cfg.Link, err)
		return c
	}
	servers, domains := ParseResolvectlLink(dnsOut), ParseResolvectlLink(domOut)
	want := "~" + strings.TrimSuffix(cfg.Zone, ".")
	switch {
	case !slices.Contains(servers, cfg.Gateway.String()):
		c.Detail = fmt.Sprintf("%s has DNS servers %v, not %s", cfg.Link, servers, cfg.Gateway)
	case !slices.Contains(domains, want):
		c.Detail = fmt.Sprintf("%s routes domains %v, not %s", cfg.Link, domains, want)
	default:
		c.OK = true
		c.Detail = fmt.Sprintf("resolved sends %s to %s on %s", want, cfg.Gateway, cfg.Link)
	}
	return c
}

// ParseResolvectlLink returns the values of `resolvectl dns LINK` or
// `resolvectl domain LINK` output ("Link 5 (banger0): 172.16.0.1:42069").
func ParseResolvectlLink(out []byte) []string {
	var vals []string
	for _, l := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "Link ") {
			continue
		}
		if _, rest, ok := strings.Cut(l, "):"); ok {
			vals = append(vals, strings.Fields(rest)...)
		}
	}
	return vals
}

// ParseNSSwitchHosts returns the sources of the hosts: line of an
// nsswitch.conf, without their [action] annotations.
func ParseNSSwitchHosts(data []byte) []string {
	var srcs []string
	for _, l := range strings.Split(string(data), "\n") {
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(k) != "hosts" {
			continue
		}
		srcs = nil // the last hosts: line wins
		inAction := false
		for _, f := range strings.Fields(v) {
			switch {
			case strings.HasPrefix(f, "["):
				inAction = !strings.HasSuffix(f, "]")
			case inAction:
				inAction = !strings.HasSuffix(f, "]")
			default:
				srcs = append(srcs, f)
			}
		}
	}
	return srcs
}

func resolvedNSS(deps HostDeps) Check {
	c := Check{Name: "nsswitch"}
	nss, err := deps.readFile(nsswitchPath)
	if err != nil {
		c.Detail = fmt.Sprintf("reading %s: %v", nsswitchPath, err)
		return c
	}
	srcs := ParseNSSwitchHosts(nss)
	if slices.Contains(srcs, "resolve") {
		c.OK, c.Detail = true, "nsswitch hosts: uses resolve (nss-resolve)"
		return c
	}
	rc, _ := deps.readFile(ResolvConf)
	ups, _ := ParseResolvConf(rc)
	if slices.Contains(srcs, "dns") && slices.Contains(ups, "127.0.0.53:53") {
		c.OK, c.Detail = true, "nsswitch hosts: uses dns and /etc/resolv.conf points at resolved's stub 127.0.0.53"
		return c
	}
	c.Detail = fmt.Sprintf("nsswitch hosts: is %v and /etc/resolv.conf lists %v: programs do not ask systemd-resolved", srcs, ups)
	c.Fix = "add `resolve [!UNAVAIL=return]` before `dns` on the hosts: line of /etc/nsswitch.conf (Debian package libnss-resolve), or make /etc/resolv.conf a link to /run/systemd/resolve/stub-resolv.conf"
	return c
}

func snippetRouting(deps HostDeps, m Method, cfg HostConfig) Check {
	s := DnsmasqSnippet(m, cfg)
	c := Check{Name: "routing"}
	want := fmt.Sprintf("server=/%s/%s#%d", strings.TrimSuffix(cfg.Zone, "."), cfg.Loopback.Addr(), cfg.Loopback.Port())
	data, err := deps.readFile(s.Path)
	if err == nil && slices.Contains(strings.Fields(string(data)), want) {
		c.OK, c.Detail = true, fmt.Sprintf("%s sends %s to the daemon", s.Path, cfg.Zone)
		return c
	}
	c.Detail = fmt.Sprintf("%s does not contain %s", s.Path, want)
	c.Fix = fmt.Sprintf("write the file that `banger dns setup` prints to %s, then run `%s`", s.Path, strings.Join(s.Apply[0], " "))
	return c
}

func dnsmasqNSS(deps HostDeps) Check {
	c := Check{Name: "nsswitch"}
	nss, err := deps.readFile(nsswitchPath)
	if err != nil {
		c.Detail = fmt.Sprintf("reading %s: %v", nsswitchPath, err)
		return c
	}
	srcs := ParseNSSwitchHosts(nss)
	rc, _ := deps.readFile(ResolvConf)
	ups, _ := ParseResolvConf(rc)
	local := slices.ContainsFunc(ups, func(u string) bool {
		ap, err := netip.ParseAddrPort(u)
		return err == nil && ap.Addr().IsLoopback()
	})
	if slices.Contains(srcs, "dns") && local {
		c.OK, c.Detail = true, fmt.Sprintf("nsswitch hosts: uses dns and /etc/resolv.conf points at the local dnsmasq %v", ups)
		return c
	}
	c.Detail = fmt.Sprintf("nsswitch hosts: is %v and /etc/resolv.conf lists %v: programs do not ask the local dnsmasq", srcs, ups)
	c.Fix = "make dnsmasq the host's resolver: `nameserver 127.0.0.1` in /etc/resolv.conf and `dns` on the hosts: line of /etc/nsswitch.conf"
	return c
}
