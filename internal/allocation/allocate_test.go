package allocation

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"banger/internal/nat"
	"banger/internal/network"
)

var equatePrefix = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// workstation is a typical host: loopback, a LAN, Docker.
func workstation() Host {
	return Host{
		Links:    []string{"lo", "eth0", "docker0"},
		Prefixes: prefixes("127.0.0.0/8", "192.168.1.0/24", "172.17.0.0/16"),
		Ports:    []int{22, 53, 631},
	}
}

func TestAllocateFirstUser(t *testing.T) {
	got, err := Allocate("alice", 1001, nil, workstation(), DefaultPool())
	if err != nil {
		t.Fatal(err)
	}
	want := Allocation{
		Version: Version, User: "alice", UID: 1001, Index: 1,
		Bridge: "banger1", Subnet: netip.MustParsePrefix("10.213.1.0/24"), TAPPrefix: "bg1-",
		Chains:  nat.Chains{Forward: "BANGER1-FWD", Input: "BANGER1-IN", Post: "BANGER1-POST", Pre: "BANGER1-PRE"},
		DNSPort: 42102, GuestDNSPort: 42103, Zone: "alice.vm.",
	}
	if diff := cmp.Diff(want, got, equatePrefix); diff != "" {
		t.Errorf("Allocate (-want +got):\n%s", diff)
	}
}

func TestAllocateAvoidsOthersAndHost(t *testing.T) {
	alice, err := Allocate("alice", 1001, nil, workstation(), DefaultPool())
	if err != nil {
		t.Fatal(err)
	}
	host := workstation()
	host.Links = append(host.Links, "banger2")                          // someone else's interface
	host.Prefixes = append(host.Prefixes, prefixes("10.213.2.0/23")...) // a VPN route over .2 and .3
	host.Ports = append(host.Ports, 42106)                              // index 2's ports are free, index 3's are not
	bob, err := Allocate("bob", 1002, []Allocation{alice}, host, DefaultPool())
	if err != nil {
		t.Fatal(err)
	}
	if bob.Index != 4 || bob.Bridge != "banger4" || bob.TAPPrefix != "bg4-" || bob.Chains.Forward != "BANGER4-FWD" {
		t.Errorf("bob's slot = %d %s %s %s, want 4 (2: link banger2 exists, 3: port 42106 in use)", bob.Index, bob.Bridge, bob.TAPPrefix, bob.Chains.Forward)
	}
	if bob.Subnet.String() != "10.213.4.0/24" {
		t.Errorf("bob's subnet = %v, want 10.213.4.0/24 (0: default, 1: alice, 2-3: host route)", bob.Subnet)
	}
	for _, a := range []Allocation{Default(), alice} {
		if a.Subnet.Overlaps(bob.Subnet) || a.Bridge == bob.Bridge || a.DNSPort == bob.DNSPort || a.GuestDNSPort == bob.GuestDNSPort ||
			a.TAPPrefix == bob.TAPPrefix || a.Chains == bob.Chains || a.Zone == bob.Zone {
			t.Errorf("bob's allocation %+v collides with %+v", bob, a)
		}
	}
}

func TestAllocateIgnoresDefaultRoute(t *testing.T) {
	host := workstation()
	host.Prefixes = append(host.Prefixes, netip.MustParsePrefix("0.0.0.0/0"))
	if _, err := Allocate("alice", 1001, nil, host, DefaultPool()); err != nil {
		t.Errorf("a default route blocked allocation: %v", err)
	}
}

func TestAllocateExhaustion(t *testing.T) {
	pool := DefaultPool()
	pool.Subnets = netip.MustParsePrefix("10.213.0.0/22") // .0 is the default's: room for three users
	var taken []Allocation
	for i, u := range []string{"a", "b", "c"} {
		a, err := Allocate(u, 1001+i, taken, workstation(), pool)
		if err != nil {
			t.Fatalf("user %d: %v", i, err)
		}
		taken = append(taken, a)
	}
	_, err := Allocate("d", 1004, taken, workstation(), pool)
	if !errors.Is(err, ErrExhausted) || !strings.Contains(err.Error(), "--pool") {
		t.Errorf("fourth user: err = %v, want ErrExhausted naming --pool", err)
	}

	pool = DefaultPool()
	pool.MaxIndex = 2
	host := workstation()
	host.Links = append(host.Links, "banger1")
	_, err = Allocate("a", 1001, []Allocation{{Index: 2, Bridge: "banger2"}}, host, pool)
	if !errors.Is(err, ErrExhausted) {
		t.Errorf("no free index: err = %v, want ErrExhausted", err)
	}

	host = workstation()
	host.Prefixes = append(host.Prefixes, netip.MustParsePrefix("10.0.0.0/8")) // a VPN takes everything
	_, err = Allocate("a", 1001, nil, host, DefaultPool())
	if !errors.Is(err, ErrExhausted) || !strings.Contains(err.Error(), "10.0.0.0/8") {
		t.Errorf("pool under a VPN route: err = %v, want ErrExhausted naming the route", err)
	}
}

func TestAllocateRefuses(t *testing.T) {
	for _, tt := range []struct {
		name, user string
		taken      []Allocation
		pool       Pool
	}{
		{"traversal user", "../etc", nil, DefaultPool()},
		{"slash user", "a/b", nil, DefaultPool()},
		{"option user", "-j", nil, DefaultPool()},
		{"twice", "alice", []Allocation{{User: "alice", Index: 1}}, DefaultPool()},
		{"ipv6 pool", "alice", nil, Pool{Subnets: netip.MustParsePrefix("fd00::/48"), Bits: 64, PortBase: 42100, MaxIndex: 9}},
		{"low ports", "alice", nil, Pool{Subnets: netip.MustParsePrefix("10.9.0.0/16"), Bits: 24, PortBase: 53, MaxIndex: 9}},
	} {
		if a, err := Allocate(tt.user, 1001, tt.taken, workstation(), tt.pool); err == nil {
			t.Errorf("%s: Allocate = %+v, want an error", tt.name, a)
		}
	}
}

func TestZones(t *testing.T) {
	a, err := Allocate("alice", 1001, nil, workstation(), DefaultPool())
	if err != nil || a.Zone != "alice.vm." || a.ZoneLabel() != "alice" {
		t.Fatalf("alice's zone = %q (%q), %v", a.Zone, a.ZoneLabel(), err)
	}
	odd, err := Allocate("_svc.x", 998, nil, workstation(), DefaultPool())
	if err != nil || odd.Zone != "u998.vm." {
		t.Errorf("zone of a user whose name is no DNS label = %q, %v; want u998.vm.", odd.Zone, err)
	}
	clash, err := Allocate("u1001", 1002, []Allocation{{User: "x", Index: 1, Zone: "u1001.vm."}}, workstation(), DefaultPool())
	if err != nil || clash.Zone != "u1002.vm." {
		t.Errorf("zone clash: %q, %v; want u1002.vm.", clash.Zone, err)
	}
	if Default().ZoneLabel() != "" {
		t.Errorf("default zone label = %q", Default().ZoneLabel())
	}
}

func TestDefaultMatchesPackageDefaults(t *testing.T) {
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	if d.Bridge != network.DefaultBridge || d.Subnet != network.DefaultSubnet || d.TAPPrefix != network.TAPPrefix || d.Chains != nat.DefaultChains() {
		t.Errorf("Default() = %+v, want the network and nat defaults", d)
	}
	if d.DNSListen().String() != "127.0.0.1:42069" || d.GuestDNS().String() != "10.213.0.1:42069" {
		t.Errorf("default dns = %v, %v", d.DNSListen(), d.GuestDNS())
	}
	if d.TAPName("dev") != "bg-dev" {
		t.Errorf("default tap name = %q", d.TAPName("dev"))
	}
}

func TestValidateRefusesForgedRecords(t *testing.T) {
	good, err := Allocate("alice", 1001, nil, workstation(), DefaultPool())
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*Allocation){
		"bridge eth0":         func(a *Allocation) { a.Bridge = "eth0" },
		"bridge lo":           func(a *Allocation) { a.Bridge = "lo" },
		"bridge of index 2":   func(a *Allocation) { a.Bridge = "banger2" },
		"default bridge":      func(a *Allocation) { a.Bridge = "banger0" },
		"bridge injection":    func(a *Allocation) { a.Bridge = "b -j ACCEPT" },
		"chain injection":     func(a *Allocation) { a.Chains.Forward = "X -j ACCEPT" },
		"default chains":      func(a *Allocation) { a.Chains = nat.DefaultChains() },
		"tap prefix of other": func(a *Allocation) { a.TAPPrefix = "bg2-" },
		"default tap prefix":  func(a *Allocation) { a.TAPPrefix = "bg-" },
		"subnet host bits":    func(a *Allocation) { a.Subnet = netip.MustParsePrefix("10.213.1.5/24") },
		"no subnet":           func(a *Allocation) { a.Subnet = netip.Prefix{} },
		"privileged port":     func(a *Allocation) { a.DNSPort = 53 },
		"zone outside vm":     func(a *Allocation) { a.Zone = "example.com." },
		"zone injection":      func(a *Allocation) { a.Zone = "a b.vm." },
		"user traversal":      func(a *Allocation) { a.User = "../root" },
		"negative uid":        func(a *Allocation) { a.UID = -1 },
		"old version":         func(a *Allocation) { a.Version = 0 },
		"index 0 as user":     func(a *Allocation) { a.Index = 0 },
	} {
		a := good
		edit(&a)
		if err := a.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, a)
		}
	}
}

func TestParseProcNet(t *testing.T) {
	tcp := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:A455 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0016 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0
`
	got, err := ParseProcNet([]byte(tcp), true)
	if err != nil || !cmp.Equal(got, []int{42069}) {
		t.Errorf("tcp listeners = %v, %v; want [42069] (the established socket is no listener)", got, err)
	}
	udp := `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 00000000000000000000000001000000:0035 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3 2 0000000000000000 0
`
	got, err = ParseProcNet([]byte(udp), false)
	if err != nil || !cmp.Equal(got, []int{53}) {
		t.Errorf("udp6 ports = %v, %v; want [53]", got, err)
	}
	if _, err := ParseProcNet([]byte("header\n 0: nonsense x\n"), true); err == nil {
		t.Error("ParseProcNet accepted a broken table")
	}
}

func TestHostFrom(t *testing.T) {
	links := network.NewFakeLinks(
		network.Link{Name: "lo", Kind: "device", Up: true, Addrs: prefixes("127.0.0.1/8")},
		network.Link{Name: "eth0", Kind: "device", Up: true, Addrs: prefixes("192.168.1.20/24")},
	)
	links.ExtraRoutes = []network.Route{{Dst: netip.MustParsePrefix("10.213.5.0/24"), Dev: "tun0"}}
	h, err := HostFrom(links)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Allocate("alice", 1001, []Allocation{{Index: 1, Bridge: "banger1", User: "x", Subnet: netip.MustParsePrefix("10.213.1.0/24")},
		{Index: 2, Bridge: "banger2", User: "y", Subnet: netip.MustParsePrefix("10.213.2.0/23")}}, h, DefaultPool())
	if err != nil {
		t.Fatal(err)
	}
	if a.Subnet.String() != "10.213.4.0/24" {
		t.Errorf("subnet = %v, want 10.213.4.0/24", a.Subnet)
	}
	for _, p := range []string{"127.0.0.0/8", "192.168.1.0/24", "10.213.5.0/24"} {
		found := false
		for _, q := range h.Prefixes {
			found = found || q.String() == p
		}
		if !found {
			t.Errorf("HostFrom lacks %s: %v", p, h.Prefixes)
		}
	}
}
