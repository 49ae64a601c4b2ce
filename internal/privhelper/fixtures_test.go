package privhelper

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"banger/internal/allocation"
	"banger/internal/nat"
	"banger/internal/network"
)

// Two users with allocations 1 and 2, as setup makes them.
const (
	aliceUID = 1001
	bobUID   = 1002
)

func allocations(t *testing.T) (alice, bob allocation.Allocation) {
	t.Helper()
	host := allocation.Host{Links: []string{"lo", "eth0"}, Prefixes: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}}
	alice, err := allocation.Allocate("alice", aliceUID, nil, host, allocation.DefaultPool())
	if err != nil {
		t.Fatal(err)
	}
	bob, err = allocation.Allocate("bob", bobUID, []allocation.Allocation{alice}, host, allocation.DefaultPool())
	if err != nil {
		t.Fatal(err)
	}
	return alice, bob
}

// fakeUsers is a user database.
type fakeUsers map[string]int

func (u fakeUsers) LookupUID(uid int) (string, error) {
	for n, id := range u {
		if id == uid {
			return n, nil
		}
	}
	return "", fmt.Errorf("no such user: uid %d", uid)
}

func (u fakeUsers) LookupName(name string) (int, error) {
	if id, ok := u[name]; ok {
		return id, nil
	}
	return 0, fmt.Errorf("no such user: %s", name)
}

var users = fakeUsers{"root": 0, "alice": aliceUID, "bob": bobUID, "carol": 1003, "mallory": 1004}

// world is a fake host: links, a firewall, a registry with alice's and
// bob's allocations (owned by the test's uid, which plays root).
type world struct {
	links *network.FakeLinks
	fw    *nat.FakeFirewall
	reg   allocation.Registry
	alice allocation.Allocation
	bob   allocation.Allocation
	out   strings.Builder
	err   strings.Builder
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{
		links: network.NewFakeLinks(
			network.Link{Name: "lo", Kind: "device", Up: true, Owner: -1, Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
			network.Link{Name: "eth0", Kind: "device", Up: true, Owner: -1, Addrs: []netip.Prefix{netip.MustParsePrefix("192.168.1.20/24")}},
		),
		fw:  nat.NewFakeFirewall(nat.NFT),
		reg: allocation.Registry{Dir: filepath.Join(t.TempDir(), "users"), Owner: os.Getuid()},
	}
	w.alice, w.bob = allocations(t)
	for _, a := range []allocation.Allocation{w.alice, w.bob} {
		if err := w.reg.Save(a); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func (w *world) deps() Deps {
	return Deps{
		Registry: w.reg,
		Users:    users,
		Lock:     func() (func(), error) { return func() {}, nil },
		Direct:   DirectDeps{Links: w.links, Runner: w.fw, LookPath: w.fw.LookPath, ReadFile: w.fw.ReadFile},
		Stdout:   &w.out,
		Stderr:   &w.err,
	}
}

// state renders every link and both firewall backends: the whole host as
// far as the helper can reach it.
func (w *world) state(t *testing.T) string {
	t.Helper()
	ls, err := w.links.List()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range ls {
		addrs := make([]string, len(l.Addrs))
		for i, a := range l.Addrs {
			addrs[i] = a.String()
		}
		slices.Sort(addrs)
		lines = append(lines, fmt.Sprintf("link %s kind %s mac %s master %q up %v owner %d addrs %s", l.Name, l.Kind, l.MAC, l.Master, l.Up, l.Owner, strings.Join(addrs, ",")))
	}
	return strings.Join(lines, "\n") + "\n--nft--\n" + w.fw.Rules(nat.NFT) + "--legacy--\n" + w.fw.Rules(nat.Legacy) + fmt.Sprintf("ip_forward %v\n", w.fw.IPForward())
}
