package network

import (
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"banger/internal/testutil"

	"github.com/google/go-cmp/cmp"
)

// TestHostBridgeAndTAPs drives real netlink in a throwaway network namespace
// and checks the result both through Render and through `ip`.
func TestHostBridgeAndTAPs(t *testing.T) {
	if !testutil.InNetns(t) {
		return
	}
	ctx := context.Background()
	m, err := New(Config{}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if s := state(t, m); s != "" {
		t.Fatalf("fresh namespace state = %q, want empty", s)
	}
	for range 2 {
		if err := m.EnsureBridge(ctx); err != nil {
			t.Fatal(err)
		}
		if err := m.CreateTAP(ctx, TAPName("dev"), TAPMAC("dev"), 1000); err != nil {
			t.Fatal(err)
		}
		if err := m.CreateTAP(ctx, TAPName("web"), TAPMAC("web"), -1); err != nil {
			t.Fatal(err)
		}
	}
	want := strings.Join([]string{
		"bridge banger0 kind bridge mac " + bridgeMAC("banger0").String() + " up addrs 10.213.0.1/24",
		"tap bg-dev mac " + TAPMAC("dev").String() + " master banger0 up owner 1000",
		"tap bg-web mac " + TAPMAC("web").String() + " master banger0 up owner 0",
	}, "\n")
	if diff := cmp.Diff(want, state(t, m)); diff != "" {
		t.Errorf("state after create (-want +got):\n%s", diff)
	}
	out, err := exec.Command("ip", "-d", "link", "show", "bg-dev").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show: %v: %s", err, out)
	}
	for _, s := range []string{"master banger0", "tap", "persist on", "pi off", "vnet_hdr on", "user ", TAPMAC("dev").String()} {
		if !strings.Contains(string(out), s) {
			t.Errorf("ip -d link show bg-dev lacks %q:\n%s", s, out)
		}
	}
	out, err = exec.Command("ip", "-4", "route", "show", "dev", "banger0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "10.213.0.0/24") {
		t.Errorf("no connected route for the subnet on banger0: %v: %s", err, out)
	}

	taps, err := m.ListTAPs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(taps) != 2 || taps[0].Name != "bg-dev" || taps[0].Owner != 1000 || taps[1].Name != "bg-web" {
		t.Errorf("ListTAPs = %+v", taps)
	}

	// Re-creating with another owner replaces the TAP.
	if err := m.CreateTAP(ctx, "bg-dev", TAPMAC("dev"), 2000); err != nil {
		t.Fatal(err)
	}
	if s := state(t, m); !strings.Contains(s, "tap bg-dev mac "+TAPMAC("dev").String()+" master banger0 up owner 2000") {
		t.Errorf("owner change not applied:\n%s", s)
	}

	for range 2 {
		for _, n := range []string{"bg-dev", "bg-web"} {
			if err := m.DeleteTAP(ctx, n); err != nil {
				t.Fatal(err)
			}
		}
		if err := m.DeleteBridge(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if s := state(t, m); s != "" {
		t.Errorf("state after delete = %q, want empty", s)
	}
}

// TestHostSubnetClash puts an address of the subnet on a dummy link and
// checks that EnsureBridge refuses to add the bridge.
func TestHostSubnetClash(t *testing.T) {
	if !testutil.InNetns(t) {
		return
	}
	for _, argv := range [][]string{
		{"ip", "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink1"},
		{"ip", "addr", "add", "10.213.0.9/16", "dev", "uplink0"},
		{"ip", "link", "set", "uplink0", "up"},
	} {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", argv, err, out)
		}
	}
	m, err := New(Config{}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	err = m.EnsureBridge(context.Background())
	if err == nil || !strings.Contains(err.Error(), "uplink0") {
		t.Fatalf("EnsureBridge over a clashing subnet: err = %v", err)
	}
	if s := state(t, m); s != "" {
		t.Errorf("clash left state %q", s)
	}
	other, err := New(Config{Bridge: "bangertest1", Subnet: netip.MustParsePrefix("10.214.0.0/24")}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.EnsureBridge(context.Background()); err != nil {
		t.Errorf("EnsureBridge with a free configured subnet: %v", err)
	}
}
