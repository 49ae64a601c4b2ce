package dns

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"banger/internal/system"
)

// Method is how the host's resolver learns about the zone.
type Method string

const (
	// MethodResolved routes the zone to the daemon with per-link DNS on
	// the bridge (systemd-resolved 246 or later).
	MethodResolved Method = "systemd-resolved"
	// MethodNetworkManager adds a server line to NetworkManager's dnsmasq.
	MethodNetworkManager Method = "networkmanager-dnsmasq"
	// MethodDnsmasq adds a server line to a system dnsmasq.
	MethodDnsmasq Method = "dnsmasq"
	// MethodNone means no supported local resolver was found.
	MethodNone Method = "none"
)

// minResolvedVersion is the first systemd-resolved that accepts a port in
// a per-link DNS server ("IP:PORT").
const minResolvedVersion = 246

// Snippet paths for the dnsmasq-based methods.
const (
	NetworkManagerSnippetPath = "/etc/NetworkManager/dnsmasq.d/banger.conf"
	DnsmasqSnippetPath        = "/etc/dnsmasq.d/banger.conf"
	nsswitchPath              = "/etc/nsswitch.conf"
)

// HostConfig says where the daemon answers, for the host's resolver.
type HostConfig struct {
	// Link is the bridge ("banger0"); resolved's per-link DNS lives on it.
	Link string
	// Gateway is the daemon's listener on the bridge gateway address.
	// systemd-resolved sends a link's queries out of that link, so its
	// per-link server must be an address of the bridge, not loopback.
	Gateway netip.AddrPort
	// Loopback is the daemon's loopback listener, used by dnsmasq.
	Loopback netip.AddrPort
	// Zone is the forward zone ("vm."); ReverseZones the in-addr.arpa
	// zones of the subnet (Server.ReverseZones).
	Zone         string
	ReverseZones []string
}

func (c HostConfig) zones() []string {
	return append([]string{c.Zone}, c.ReverseZones...)
}

// HostDeps are the host access used by Detect, Setup, Teardown and Status.
type HostDeps struct {
	// Privileged runs the commands that change resolved (system.Privileged()).
	Privileged system.Runner
	// Plain runs the commands that only read state (system.Plain()).
	Plain system.Runner
	// ReadFile and Glob read configuration; nil means os.ReadFile and
	// filepath.Glob.
	ReadFile func(string) ([]byte, error)
	Glob     func(string) ([]string, error)
}

func (d HostDeps) readFile(p string) ([]byte, error) {
	if d.ReadFile != nil {
		return d.ReadFile(p)
	}
	return os.ReadFile(p)
}

func (d HostDeps) glob(p string) ([]string, error) {
	if d.Glob != nil {
		return d.Glob(p)
	}
	return filepath.Glob(p)
}

// Detection is what Detect found.
type Detection struct {
	Method Method
	// ResolvedVersion is systemd-resolved's version, 0 when unknown.
	ResolvedVersion int
}

// Detect finds the host's local resolver: systemd-resolved when it runs,
// else NetworkManager configured with dns=dnsmasq, else a dnsmasq service.
func Detect(ctx context.Context, deps HostDeps) Detection {
	if active(ctx, deps.Plain, "systemd-resolved") {
		d := Detection{Method: MethodResolved}
		if out, err := deps.Plain.Output(ctx, "resolvectl", "--version"); err == nil {
			d.ResolvedVersion = ParseSystemdVersion(out)
		}
		return d
	}
	if nmUsesDnsmasq(deps) && active(ctx, deps.Plain, "NetworkManager") {
		return Detection{Method: MethodNetworkManager}
	}
	if active(ctx, deps.Plain, "dnsmasq") {
		return Detection{Method: MethodDnsmasq}
	}
	return Detection{Method: MethodNone}
}

func active(ctx context.Context, r system.Runner, unit string) bool {
	out, err := r.Output(ctx, "systemctl", "is-active", unit)
	return err == nil && strings.TrimSpace(string(out)) == "active"
}

var systemdVersionRE = regexp.MustCompile(`(?m)^systemd (\d+)`)

// ParseSystemdVersion reads the version from `resolvectl --version`
// ("systemd 252 (252.22-1~deb12u1)"); 0 when absent.
func ParseSystemdVersion(out []byte) int {
	m := systemdVersionRE.FindSubmatch(out)
	if m == nil {
		return 0
	}
	v, _ := strconv.Atoi(string(m[1]))
	return v
}

// nmUsesDnsmasq reports whether NetworkManager's configuration sets
// dns=dnsmasq in its [main] section (the last file read wins, as in NM).
func nmUsesDnsmasq(deps HostDeps) bool {
	files := []string{"/etc/NetworkManager/NetworkManager.conf"}
	if more, err := deps.glob("/etc/NetworkManager/conf.d/*.conf"); err == nil {
		slices.Sort(more)
		files = append(files, more...)
	}
	dns := ""
	for _, f := range files {
		data, err := deps.readFile(f)
		if err != nil {
			continue
		}
		if v, ok := iniValue(data, "main", "dns"); ok {
			dns = v
		}
	}
	return dns == "dnsmasq"
}

// iniValue returns key's value in section of a keyfile.
func iniValue(data []byte, section, key string) (string, bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	cur, val, found := "", "", false
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' || l[0] == ';' {
			continue
		}
		if strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]") {
			cur = strings.TrimSpace(l[1 : len(l)-1])
			continue
		}
		if k, v, ok := strings.Cut(l, "="); ok && cur == section && strings.TrimSpace(k) == key {
			val, found = strings.TrimSpace(v), true
		}
	}
	return val, found
}

// ResolvedSetupCommands returns the resolvectl commands that route the
// zone and its reverse zones to the gateway listener on the bridge. The
// link is kept off the default route, and DNSSEC and DNS-over-TLS are off
// for it, since the zone is local and unsigned.
func ResolvedSetupCommands(cfg HostConfig) [][]string {
	domains := []string{"resolvectl", "domain", cfg.Link}
	for _, z := range cfg.zones() {
		domains = append(domains, "~"+strings.TrimSuffix(z, "."))
	}
	return [][]string{
		{"resolvectl", "dns", cfg.Link, cfg.Gateway.String()},
		domains,
		{"resolvectl", "default-route", cfg.Link, "false"},
		{"resolvectl", "dnssec", cfg.Link, "no"},
		{"resolvectl", "dnsovertls", cfg.Link, "no"},
	}
}

// ResolvedTeardownCommands returns the commands that undo the setup.
func ResolvedTeardownCommands(cfg HostConfig) [][]string {
	return [][]string{{"resolvectl", "revert", cfg.Link}}
}

// Snippet is configuration for the user to install by hand.
type Snippet struct {
	Path    string
	Content string
	// Apply are the commands that make the resolver read the file.
	Apply [][]string
}

// DnsmasqSnippet returns the file that sends the zone to the loopback
// listener, for NetworkManager's dnsmasq or a system dnsmasq.
func DnsmasqSnippet(m Method, cfg HostConfig) Snippet {
	var b strings.Builder
	b.WriteString("# Written for banger: send .vm names to bangerd's DNS server.\n")
	lp := fmt.Sprintf("%s#%d", cfg.Loopback.Addr(), cfg.Loopback.Port())
	for _, z := range cfg.zones() {
		fmt.Fprintf(&b, "server=/%s/%s\n", strings.TrimSuffix(z, "."), lp)
	}
	// VM addresses are private; let them through dnsmasq's rebind guard.
	fmt.Fprintf(&b, "rebind-domain-ok=/%s/\n", strings.TrimSuffix(cfg.Zone, "."))
	if m == MethodNetworkManager {
		return Snippet{Path: NetworkManagerSnippetPath, Content: b.String(), Apply: [][]string{{"systemctl", "restart", "NetworkManager"}}}
	}
	return Snippet{Path: DnsmasqSnippetPath, Content: b.String(), Apply: [][]string{{"systemctl", "restart", "dnsmasq"}}}
}

// SetupResult says what Setup did or what the user must do.
type SetupResult struct {
	Method Method
	// Ran are the commands Setup ran (systemd-resolved).
	Ran [][]string
	// Manual is the snippet to install by hand (dnsmasq methods); nil
	// when Setup did the work.
	Manual *Snippet
}

// ErrNoResolver is returned when the host has no supported resolver.
var ErrNoResolver = errors.New("no supported local resolver (systemd-resolved, NetworkManager with dnsmasq, or dnsmasq) is running")

// Setup routes the zone to the daemon. With systemd-resolved it runs
// ResolvedSetupCommands (not persistent: the daemon should call it again
// after creating the bridge). Otherwise it changes nothing and returns the
// snippet to install.
func Setup(ctx context.Context, deps HostDeps, cfg HostConfig) (SetupResult, error) {
	d := Detect(ctx, deps)
	res := SetupResult{Method: d.Method}
	switch d.Method {
	case MethodResolved:
		if d.ResolvedVersion != 0 && d.ResolvedVersion < minResolvedVersion {
			return res, fmt.Errorf("setting up host DNS: systemd-resolved %d cannot use a DNS server port (needs %d or later); configure dnsmasq instead with this file:\n%s",
				d.ResolvedVersion, minResolvedVersion, DnsmasqSnippet(MethodDnsmasq, cfg).Content)
		}
		for _, argv := range ResolvedSetupCommands(cfg) {
			if err := deps.Privileged.Run(ctx, argv...); err != nil {
				return res, fmt.Errorf("setting up host DNS through systemd-resolved (does the bridge %s exist? it does while bangerd runs): %w", cfg.Link, err)
			}
			res.Ran = append(res.Ran, argv)
		}
		return res, nil
	case MethodNetworkManager, MethodDnsmasq:
		s := DnsmasqSnippet(d.Method, cfg)
		res.Manual = &s
		return res, nil
	}
	return res, fmt.Errorf("setting up host DNS: %w; query the daemon directly with `dig @%s -p %d NAME.%s`",
		ErrNoResolver, cfg.Loopback.Addr(), cfg.Loopback.Port(), strings.TrimSuffix(cfg.Zone, "."))
}

// Teardown undoes Setup: with systemd-resolved it reverts the link; with
// dnsmasq it returns the snippet whose file the user should delete.
func Teardown(ctx context.Context, deps HostDeps, cfg HostConfig) (SetupResult, error) {
	d := Detect(ctx, deps)
	res := SetupResult{Method: d.Method}
	switch d.Method {
	case MethodResolved:
		for _, argv := range ResolvedTeardownCommands(cfg) {
			if err := deps.Privileged.Run(ctx, argv...); err != nil {
				return res, fmt.Errorf("reverting host DNS on %s: %w", cfg.Link, err)
			}
			res.Ran = append(res.Ran, argv)
		}
	case MethodNetworkManager, MethodDnsmasq:
		s := DnsmasqSnippet(d.Method, cfg)
		res.Manual = &s
	}
	return res, nil
}

// HostConfigFor derives the resolver integration's settings from banger's
// configuration: the bridge, the VM subnet, the loopback listener and the
// listener port on the bridge gateway.
func HostConfigFor(bridge string, subnet netip.Prefix, loopback string, gatewayPort int) (HostConfig, error) {
	subnet = subnet.Masked()
	loop, err := netip.ParseAddrPort(loopback)
	if err != nil {
		return HostConfig{}, fmt.Errorf("dns listener %q: %w", loopback, err)
	}
	if loop.Port() == 0 {
		return HostConfig{}, fmt.Errorf("dns listener %s: port 0 takes a different free port at every daemon start, so the host's resolver cannot be pointed at it; set a fixed port in dns_listen", loopback)
	}
	rev, err := reverseZones(subnet)
	if err != nil {
		return HostConfig{}, err
	}
	gw := subnet.Addr().Next()
	return HostConfig{Link: bridge, Gateway: netip.AddrPortFrom(gw, uint16(gatewayPort)), Loopback: loop, Zone: "vm.", ReverseZones: rev}, nil
}
