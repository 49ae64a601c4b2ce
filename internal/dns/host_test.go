package dns

import (
	"context"
	"errors"
	"io/fs"
	"net/netip"
	"strings"
	"testing"

	"banger/internal/system"
	"github.com/google/go-cmp/cmp"
)

var testHost = HostConfig{
	Link:         "banger0",
	Gateway:      netip.MustParseAddrPort("172.16.0.1:42069"),
	Loopback:     netip.MustParseAddrPort("127.0.0.1:42069"),
	Zone:         "vm.",
	ReverseZones: []string{"0.16.172.in-addr.arpa."},
}

// fakeHost models the host's resolver state for Detect, Setup and Status:
// which units are active, resolvectl's per-link settings (changed by the
// setup commands it receives) and configuration files.
type fakeHost struct {
	active  map[string]bool
	version string
	linkOK  bool
	dns     []string
	domains []string
	getent  string
	files   map[string]string
}

func (h *fakeHost) deps() (HostDeps, *system.Fake, *system.Fake) {
	priv := &system.Fake{Handler: h.handle}
	plain := &system.Fake{Handler: h.handle}
	return HostDeps{
		Privileged: priv,
		Plain:      plain,
		ReadFile: func(p string) ([]byte, error) {
			if s, ok := h.files[p]; ok {
				return []byte(s), nil
			}
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		},
		Glob: func(string) ([]string, error) { return nil, nil },
	}, priv, plain
}

func (h *fakeHost) handle(argv []string, _ []byte) ([]byte, error) {
	fail := &system.CommandError{Argv: argv, ExitCode: 1, Err: errors.New("exit status 1")}
	switch {
	case argv[0] == "systemctl" && argv[1] == "is-active":
		if h.active[argv[2]] {
			return []byte("active\n"), nil
		}
		return []byte("inactive\n"), &system.CommandError{Argv: argv, ExitCode: 3, Err: errors.New("exit status 3")}
	case argv[0] == "resolvectl" && argv[1] == "--version":
		return []byte(h.version), nil
	case argv[0] == "resolvectl" && len(argv) >= 3 && argv[2] == "banger0":
		if !h.linkOK {
			fail.Stderr = `Failed to resolve interface "banger0": No such device`
			return nil, fail
		}
		line := func(vals []string) []byte { return []byte("Link 7 (banger0): " + strings.Join(vals, " ") + "\n") }
		switch argv[1] {
		case "dns":
			if len(argv) == 3 {
				return line(h.dns), nil
			}
			h.dns = argv[3:]
		case "domain":
			if len(argv) == 3 {
				return line(h.domains), nil
			}
			h.domains = argv[3:]
		case "revert":
			h.dns, h.domains = nil, nil
		}
		return nil, nil
	case argv[0] == "getent":
		if h.getent == "" {
			return nil, &system.CommandError{Argv: argv, ExitCode: 2, Err: errors.New("exit status 2")}
		}
		return []byte(h.getent), nil
	}
	return nil, fail
}

const (
	nssResolve = "passwd: files systemd\nhosts:          files mymachines resolve [!UNAVAIL=return] dns myhostname\n"
	nssDNS     = "hosts: files dns # plain\n"
	stubConf   = "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n"
)

func TestResolvedSetupCommands(t *testing.T) {
	want := [][]string{
		{"resolvectl", "dns", "banger0", "172.16.0.1:42069"},
		{"resolvectl", "domain", "banger0", "~vm", "~0.16.172.in-addr.arpa"},
		{"resolvectl", "default-route", "banger0", "false"},
		{"resolvectl", "dnssec", "banger0", "no"},
		{"resolvectl", "dnsovertls", "banger0", "no"},
	}
	if diff := cmp.Diff(want, ResolvedSetupCommands(testHost)); diff != "" {
		t.Errorf("setup commands (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([][]string{{"resolvectl", "revert", "banger0"}}, ResolvedTeardownCommands(testHost)); diff != "" {
		t.Errorf("teardown commands (-want +got):\n%s", diff)
	}
}

func TestDnsmasqSnippet(t *testing.T) {
	want := "# Written for banger: send .vm names to bangerd's DNS server.\n" +
		"server=/vm/127.0.0.1#42069\n" +
		"server=/0.16.172.in-addr.arpa/127.0.0.1#42069\n" +
		"rebind-domain-ok=/vm/\n"
	nm := DnsmasqSnippet(MethodNetworkManager, testHost)
	if diff := cmp.Diff(Snippet{Path: NetworkManagerSnippetPath, Content: want, Apply: [][]string{{"systemctl", "restart", "NetworkManager"}}}, nm); diff != "" {
		t.Errorf("NetworkManager snippet (-want +got):\n%s", diff)
	}
	if got := DnsmasqSnippet(MethodDnsmasq, testHost); got.Path != DnsmasqSnippetPath || got.Content != want {
		t.Errorf("dnsmasq snippet = %+v", got)
	}
}

func TestSetupStatusTeardownWithResolved(t *testing.T) {
	h := &fakeHost{
		active:  map[string]bool{"systemd-resolved": true},
		version: "systemd 252 (252.22-1~deb12u1)\n+PAM +AUDIT +SELINUX\n",
		linkOK:  true,
		getent:  "172.16.0.2      dev.vm\n",
		files:   map[string]string{nsswitchPath: nssResolve, ResolvConf: stubConf},
	}
	deps, priv, _ := h.deps()
	ctx := context.Background()

	st := Status(ctx, deps, testHost, "")
	if st.Works || st.Method != MethodResolved || checkByName(st, "routing").OK {
		t.Errorf("status before setup: %+v, want resolved with routing failing", st)
	}
	if fix := checkByName(st, "routing").Fix; !strings.Contains(fix, "banger dns setup") {
		t.Errorf("routing fix %q does not name `banger dns setup`", fix)
	}
	if len(priv.Calls()) != 0 {
		t.Errorf("Status ran privileged commands: %v", priv.CallLines())
	}

	res, err := Setup(ctx, deps, testHost)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ResolvedSetupCommands(testHost), priv.Calls()); diff != "" {
		t.Errorf("Setup ran (-want +got):\n%s", diff)
	}
	if res.Manual != nil || len(res.Ran) != 5 {
		t.Errorf("Setup result %+v", res)
	}

	st = Status(ctx, deps, testHost, "dev")
	if !st.Works {
		t.Errorf("status after setup does not work: %+v", st)
	}
	if d := checkByName(st, "lookup").Detail; !strings.Contains(d, "172.16.0.2 dev.vm") {
		t.Errorf("lookup detail %q", d)
	}

	if _, err := Teardown(ctx, deps, testHost); err != nil {
		t.Fatal(err)
	}
	if st := Status(ctx, deps, testHost, ""); st.Works {
		t.Errorf("status after teardown still works: %+v", st)
	}
}

func TestResolvedProblems(t *testing.T) {
	ctx := context.Background()

	// The bridge does not exist: setup fails naming the daemon.
	h := &fakeHost{active: map[string]bool{"systemd-resolved": true}, version: "systemd 255 (255.4-1ubuntu8)\n",
		files: map[string]string{nsswitchPath: nssResolve, ResolvConf: stubConf}}
	deps, _, _ := h.deps()
	if _, err := Setup(ctx, deps, testHost); err == nil || !strings.Contains(err.Error(), "bangerd") || !strings.Contains(err.Error(), "No such device") {
		t.Errorf("Setup without the bridge: %v", err)
	}
	if c := checkByName(Status(ctx, deps, testHost, ""), "routing"); c.OK || !strings.Contains(c.Fix, "start bangerd") {
		t.Errorf("routing check without the bridge: %+v", c)
	}

	// Too old for a port in a per-link server.
	h = &fakeHost{active: map[string]bool{"systemd-resolved": true}, version: "systemd 245 (245.4-4ubuntu3)\n", linkOK: true}
	deps, priv, _ := h.deps()
	if _, err := Setup(ctx, deps, testHost); err == nil || !strings.Contains(err.Error(), "server=/vm/127.0.0.1#42069") {
		t.Errorf("Setup with resolved 245: %v, want an error carrying the dnsmasq snippet", err)
	}
	if len(priv.Calls()) != 0 {
		t.Errorf("Setup with resolved 245 ran %v", priv.CallLines())
	}

	// Programs do not ask resolved: plain dns to a non-stub resolver.
	h = &fakeHost{active: map[string]bool{"systemd-resolved": true}, linkOK: true,
		dns: []string{"172.16.0.1:42069"}, domains: []string{"~vm"},
		files: map[string]string{nsswitchPath: nssDNS, ResolvConf: "nameserver 192.168.1.1\n"}}
	deps, _, _ = h.deps()
	st := Status(ctx, deps, testHost, "")
	if c := checkByName(st, "nsswitch"); st.Works || c.OK || !strings.Contains(c.Fix, "libnss-resolve") {
		t.Errorf("nsswitch without resolve: %+v", st)
	}
	// ... but dns to the stub is fine.
	h.files[ResolvConf] = stubConf
	if st := Status(ctx, deps, testHost, ""); !st.Works {
		t.Errorf("dns to the stub: %+v", st)
	}
}

func TestDnsmasqMethods(t *testing.T) {
	ctx := context.Background()
	h := &fakeHost{
		active: map[string]bool{"NetworkManager": true},
		files: map[string]string{
			"/etc/NetworkManager/NetworkManager.conf": "[main]\nplugins=ifupdown,keyfile\ndns=dnsmasq\n\n[ifupdown]\nmanaged=false\n",
			nsswitchPath: nssDNS, ResolvConf: "nameserver 127.0.1.1\n",
		},
	}
	deps, priv, _ := h.deps()
	res, err := Setup(ctx, deps, testHost)
	if err != nil {
		t.Fatal(err)
	}
	if res.Method != MethodNetworkManager || res.Manual == nil || res.Manual.Path != NetworkManagerSnippetPath {
		t.Errorf("Setup with NetworkManager's dnsmasq: %+v", res)
	}
	if len(priv.Calls()) != 0 {
		t.Errorf("Setup changed the host: %v", priv.CallLines())
	}
	st := Status(ctx, deps, testHost, "")
	if c := checkByName(st, "routing"); st.Works || c.OK || !strings.Contains(c.Fix, NetworkManagerSnippetPath) {
		t.Errorf("status without the snippet: %+v", st)
	}
	h.files[NetworkManagerSnippetPath] = res.Manual.Content
	if st := Status(ctx, deps, testHost, ""); !st.Works {
		t.Errorf("status with the snippet: %+v", st)
	}

	// A plain dnsmasq service.
	h = &fakeHost{active: map[string]bool{"dnsmasq": true}, files: map[string]string{nsswitchPath: nssDNS, ResolvConf: "nameserver 127.0.0.1\n"}}
	deps, _, _ = h.deps()
	if d := Detect(ctx, deps); d.Method != MethodDnsmasq {
		t.Errorf("Detect = %+v, want dnsmasq", d)
	}

	// Nothing at all.
	h = &fakeHost{}
	deps, _, _ = h.deps()
	if _, err := Setup(ctx, deps, testHost); !errors.Is(err, ErrNoResolver) || !strings.Contains(err.Error(), "dig @127.0.0.1 -p 42069") {
		t.Errorf("Setup without a resolver: %v", err)
	}
	if st := Status(ctx, deps, testHost, "dev"); st.Works || st.Method != MethodNone {
		t.Errorf("Status without a resolver: %+v", st)
	}
}

func TestParsers(t *testing.T) {
	if v := ParseSystemdVersion([]byte("systemd 257 (257.4-3)\n+PAM\n")); v != 257 {
		t.Errorf("ParseSystemdVersion = %d", v)
	}
	if v := ParseSystemdVersion([]byte("garbage")); v != 0 {
		t.Errorf("ParseSystemdVersion(garbage) = %d", v)
	}
	got := ParseNSSwitchHosts([]byte("# hosts: dns\nhosts: files mdns4_minimal [NOTFOUND=return] resolve [!UNAVAIL=return] dns\nnetworks: files\n"))
	if diff := cmp.Diff([]string{"files", "mdns4_minimal", "resolve", "dns"}, got); diff != "" {
		t.Errorf("ParseNSSwitchHosts (-want +got):\n%s", diff)
	}
	got = ParseNSSwitchHosts([]byte("hosts: files [ SUCCESS=return NOTFOUND=continue ] dns\n"))
	if diff := cmp.Diff([]string{"files", "dns"}, got); diff != "" {
		t.Errorf("ParseNSSwitchHosts with a spaced action (-want +got):\n%s", diff)
	}
	got = ParseResolvectlLink([]byte("Link 7 (banger0): 172.16.0.1:42069 [fd00::1]:53\n"))
	if diff := cmp.Diff([]string{"172.16.0.1:42069", "[fd00::1]:53"}, got); diff != "" {
		t.Errorf("ParseResolvectlLink (-want +got):\n%s", diff)
	}
	if got := ParseResolvectlLink([]byte("Link 7 (banger0):\n")); len(got) != 0 {
		t.Errorf("ParseResolvectlLink(empty) = %v", got)
	}
}

func checkByName(st HostStatus, name string) Check {
	for _, c := range st.Checks {
		if c.Name == name {
			return c
		}
	}
	return Check{Name: name, Detail: "missing"}
}

func TestHostConfigForRefusesAnEphemeralLoopbackPort(t *testing.T) {
	subnet := netip.MustParsePrefix("172.16.0.0/24")
	if _, err := HostConfigFor("banger0", subnet, "127.0.0.1:0", 42069); err == nil || !strings.Contains(err.Error(), "fixed port") {
		t.Errorf("HostConfigFor with port 0: %v, want a refusal asking for a fixed port", err)
	}
	hc, err := HostConfigFor("banger0", subnet, "127.0.0.1:42069", 42069)
	if err != nil {
		t.Fatal(err)
	}
	if hc.Loopback != testHost.Loopback || hc.Gateway != testHost.Gateway {
		t.Errorf("loopback %s, gateway %s; want %s, %s", hc.Loopback, hc.Gateway, testHost.Loopback, testHost.Gateway)
	}
}
