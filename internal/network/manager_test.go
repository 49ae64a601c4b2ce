package network

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func hostLinks() *FakeLinks {
	return NewFakeLinks(
		Link{Name: "lo", Kind: "device", Up: true, Owner: -1, Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
		Link{Name: "eth0", Kind: "device", Up: true, Owner: -1, Addrs: []netip.Prefix{netip.MustParsePrefix("192.168.1.20/24")}},
	)
}

func newManager(t *testing.T, links Links) *Manager {
	t.Helper()
	m, err := New(Config{}, Deps{Links: links})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func state(t *testing.T, m *Manager) string {
	t.Helper()
	s, err := m.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBridgeAndTAPs(t *testing.T) {
	ctx := context.Background()
	links := hostLinks()
	m := newManager(t, links)
	if err := m.EnsureBridge(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.CreateTAP(ctx, TAPName("dev"), TAPMAC("dev"), 1000); err != nil {
		t.Fatal(err)
	}
	if err := m.CreateTAP(ctx, TAPName("web"), TAPMAC("web"), -1); err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"bridge banger0 kind bridge mac " + bridgeMAC("banger0").String() + " up addrs 10.213.0.1/24",
		"tap bg-dev mac " + TAPMAC("dev").String() + " master banger0 up owner 1000",
		"tap bg-web mac " + TAPMAC("web").String() + " master banger0 up owner 0",
	}, "\n")
	if diff := cmp.Diff(want, state(t, m)); diff != "" {
		t.Errorf("state after create (-want +got):\n%s", diff)
	}

	// Creating again changes nothing and makes no mutating call.
	before := len(links.Calls())
	if err := m.EnsureBridge(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.CreateTAP(ctx, TAPName("dev"), TAPMAC("dev"), 1000); err != nil {
		t.Fatal(err)
	}
	if extra := links.Calls()[before:]; len(extra) != 0 {
		t.Errorf("second create made calls %q, want none", extra)
	}

	taps, err := m.ListTAPs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tp := range taps {
		names = append(names, tp.Name)
	}
	if diff := cmp.Diff([]string{"bg-dev", "bg-web"}, names); diff != "" {
		t.Errorf("ListTAPs (-want +got):\n%s", diff)
	}

	for range 2 { // deleting what is gone is a no-op
		if err := m.DeleteTAP(ctx, "bg-dev"); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.DeleteTAP(ctx, "bg-web"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := m.DeleteBridge(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if s := state(t, m); s != "" {
		t.Errorf("state after delete = %q, want empty", s)
	}
}

func TestEnsureBridgeRefusesClashingSubnet(t *testing.T) {
	ctx := context.Background()
	links := hostLinks()
	links.ExtraRoutes = []Route{{Dst: netip.MustParsePrefix("10.0.0.0/8"), Dev: "tun0"}}
	m := newManager(t, links)
	err := m.EnsureBridge(ctx)
	if err == nil || !strings.Contains(err.Error(), "route 10.0.0.0/8 via tun0") || !strings.Contains(err.Error(), "`subnet`") {
		t.Fatalf("EnsureBridge with a clashing route: err = %v, want a clash naming the route and the setting", err)
	}
	if s := state(t, m); s != "" {
		t.Errorf("clash left state %q", s)
	}

	links = hostLinks()
	m2, err := New(Config{Subnet: netip.MustParsePrefix("192.168.1.0/24")}, Deps{Links: links})
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.EnsureBridge(ctx); err == nil || !strings.Contains(err.Error(), "address 192.168.1.20/24 on eth0") {
		t.Errorf("EnsureBridge on eth0's subnet: err = %v", err)
	}
}

func TestEnsureBridgeRefusesNonBridge(t *testing.T) {
	links := NewFakeLinks(Link{Name: "banger0", Kind: "veth", Owner: -1})
	if err := newManager(t, links).EnsureBridge(context.Background()); err == nil {
		t.Error("EnsureBridge over a veth named banger0 succeeded")
	}
}

func TestCreateTAPRepairsAndRecreates(t *testing.T) {
	ctx := context.Background()
	links := hostLinks()
	m := newManager(t, links)
	if err := m.EnsureBridge(ctx); err != nil {
		t.Fatal(err)
	}
	// A TAP left detached and down (an interrupted create) is repaired in place.
	if err := links.AddTAP("bg-dev", 1000); err != nil {
		t.Fatal(err)
	}
	if err := m.CreateTAP(ctx, "bg-dev", TAPMAC("dev"), 1000); err != nil {
		t.Fatal(err)
	}
	want := "tap bg-dev mac " + TAPMAC("dev").String() + " master banger0 up owner 1000"
	if got := state(t, m); !strings.Contains(got, want) {
		t.Errorf("repaired state:\n%s\nwant line %q", got, want)
	}
	// A different owner means delete and create again.
	if err := m.CreateTAP(ctx, "bg-dev", TAPMAC("dev"), 2000); err != nil {
		t.Fatal(err)
	}
	if got := state(t, m); !strings.Contains(got, "owner 2000") {
		t.Errorf("owner not changed:\n%s", got)
	}
}

func TestCreateTAPFailureLeavesNothing(t *testing.T) {
	ctx := context.Background()
	links := hostLinks()
	m := newManager(t, links)
	if err := m.EnsureBridge(ctx); err != nil {
		t.Fatal(err)
	}
	links.FailOn("SetMaster bg-dev banger0", errors.New("boom"))
	err := m.CreateTAP(ctx, "bg-dev", TAPMAC("dev"), 0)
	if err == nil || !strings.Contains(err.Error(), "creating tap bg-dev") {
		t.Fatalf("CreateTAP: err = %v, want an error naming the tap", err)
	}
	if got := state(t, m); strings.Contains(got, "bg-dev") {
		t.Errorf("half-made tap left behind:\n%s", got)
	}
}

func TestTAPNameChecked(t *testing.T) {
	m := newManager(t, hostLinks())
	for _, name := range []string{"eth0", "bg-", "bg-0123456789abc"} {
		if err := m.CreateTAP(context.Background(), name, nil, 0); err == nil {
			t.Errorf("CreateTAP(%q) accepted", name)
		}
		if err := m.DeleteTAP(context.Background(), name); err == nil {
			t.Errorf("DeleteTAP(%q) accepted", name)
		}
	}
}

func TestListTAPsSkipsOtherBridges(t *testing.T) {
	links := hostLinks()
	for _, l := range []Link{
		{Name: "other0", Kind: "bridge"},
		{Name: "bg-mine", Kind: "tuntap", Master: "banger0"},
		{Name: "bg-loose", Kind: "tuntap"},
		{Name: "bg-theirs", Kind: "tuntap", Master: "other0"},
		{Name: "tap0", Kind: "tuntap", Master: "banger0"},
		{Name: "bg-veth", Kind: "veth"},
	} {
		links.links[l.Name] = &l
	}
	taps, err := newManager(t, links).ListTAPs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tp := range taps {
		got = append(got, tp.Name)
	}
	if diff := cmp.Diff([]string{"bg-loose", "bg-mine"}, got); diff != "" {
		t.Errorf("ListTAPs (-want +got):\n%s", diff)
	}
}

// TestRandomTransitions replays creates and deletes in random order and
// checks after each step that the host state is exactly what the model says.
func TestRandomTransitions(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	ids := []string{"a", "b", "c", "d"}
	links := hostLinks()
	m := newManager(t, links)
	if err := m.EnsureBridge(ctx); err != nil {
		t.Fatal(err)
	}
	bridgeLine := "bridge banger0 kind bridge mac " + bridgeMAC("banger0").String() + " up addrs 10.213.0.1/24"
	model := map[string]bool{}
	for step := range 200 {
		id := ids[rng.IntN(len(ids))]
		var op string
		if rng.IntN(2) == 0 {
			op = "create"
			if err := m.CreateTAP(ctx, TAPName(id), TAPMAC(id), 1000); err != nil {
				t.Fatal(err)
			}
			model[id] = true
		} else {
			op = "delete"
			if err := m.DeleteTAP(ctx, TAPName(id)); err != nil {
				t.Fatal(err)
			}
			delete(model, id)
		}
		want := []string{bridgeLine}
		for _, i := range ids {
			if model[i] {
				want = append(want, fmt.Sprintf("tap %s mac %s master banger0 up owner 1000", TAPName(i), TAPMAC(i)))
			}
		}
		if diff := cmp.Diff(strings.Join(want, "\n"), state(t, m)); diff != "" {
			t.Fatalf("step %d (%s %s) (-want +got):\n%s", step, op, id, diff)
		}
	}
}

func TestDeleteBridgeLeavesNonBridgeAlone(t *testing.T) {
	links := hostLinks()
	m, err := New(Config{Bridge: "eth0"}, Deps{Links: links})
	if err != nil {
		t.Fatal(err)
	}
	err = m.DeleteBridge(context.Background())
	if err == nil || !strings.Contains(err.Error(), "not a bridge") {
		t.Errorf("DeleteBridge on eth0: err = %v, want a refusal", err)
	}
	if _, err := links.Link("eth0"); err != nil {
		t.Errorf("eth0 is gone: %v", err)
	}
}

// TestTAPPrefixSeparatesAllocations gives two managers their own bridge,
// subnet and TAP prefix on one host and checks that each creates, lists,
// renders and deletes only its own TAPs.
func TestTAPPrefixSeparatesAllocations(t *testing.T) {
	ctx := context.Background()
	links := hostLinks()
	a, err := New(Config{Bridge: "banger1", Subnet: netip.MustParsePrefix("10.213.1.0/24"), TAPPrefix: "bg1-"}, Deps{Links: links})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{Bridge: "banger2", Subnet: netip.MustParsePrefix("10.213.2.0/24"), TAPPrefix: "bg2-"}, Deps{Links: links})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*Manager{a, b} {
		if err := m.EnsureBridge(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.CreateTAP(ctx, TAPNameFor("bg1-", "dev"), TAPMAC("dev"), 1001); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateTAP(ctx, TAPNameFor("bg2-", "dev"), TAPMAC("dev2"), 1002); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateTAP(ctx, "bg2-x", nil, 1001); err == nil {
		t.Error("manager bg1- created a bg2- tap")
	}
	if err := a.DeleteTAP(ctx, "bg2-dev"); err == nil {
		t.Error("manager bg1- deleted a bg2- tap")
	}
	want := "bridge banger1 kind bridge mac " + bridgeMAC("banger1").String() + " up addrs 10.213.1.1/24\n" +
		"tap bg1-dev mac " + TAPMAC("dev").String() + " master banger1 up owner 1001"
	if diff := cmp.Diff(want, state(t, a)); diff != "" {
		t.Errorf("state of allocation 1 (-want +got):\n%s", diff)
	}
	taps, err := b.ListTAPs(ctx)
	if err != nil || len(taps) != 1 || taps[0].Name != "bg2-dev" {
		t.Errorf("ListTAPs of allocation 2 = %+v, %v", taps, err)
	}
}
