package daemon

import (
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"

	"banger/internal/allocation"
	"banger/internal/dns"
	"banger/internal/nat"
)

func TestBridgeListenerOpensOnce(t *testing.T) {
	srv, err := dns.New(dns.Config{Subnet: netip.MustParsePrefix("10.213.0.0/24")}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	r := &dnsRecords{srv: srv, guestAddr: "127.0.0.1:0", log: slog.New(slog.DiscardHandler)}
	for i := 0; i < 2; i++ {
		if err := r.listenOnBridge(); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(srv.Listeners()); n != 1 {
		t.Errorf("listeners = %d, want the one guest listener", n)
	}
}

func TestRootVMNamesDoNotShadowUsersZones(t *testing.T) {
	dir := t.TempDir()
	reg := allocation.Registry{Dir: dir, Owner: os.Getuid()}
	alice := allocation.Default()
	alice.User, alice.UID, alice.Index, alice.Zone = "alice", 1001, 1, "alice.vm."
	alice.Bridge, alice.TAPPrefix, alice.Chains = "banger1", "bg1-", nat.ChainsWithPrefix("BANGER1")
	alice.Subnet, alice.DNSPort, alice.GuestDNSPort = netip.MustParsePrefix("10.213.1.0/24"), 42102, 42103
	if err := reg.Save(alice); err != nil {
		t.Skipf("saving a test allocation: %v", err)
	}
	for _, zone := range []string{"vm.", "alice.vm."} {
		var aliases []string
		if zone != "vm." {
			aliases = []string{"vm."}
		}
		srv, err := dns.New(dns.Config{Zone: zone, Aliases: aliases}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		r := &dnsRecords{srv: srv, log: slog.New(slog.DiscardHandler), users: reg}
		err = r.Usable("alice")
		if zone == "vm." && (err == nil || !strings.Contains(err.Error(), "zone of the banger user alice")) {
			t.Errorf("root's daemon accepted a vm named like a user's zone: %v", err)
		}
		if zone != "vm." && err != nil {
			t.Errorf("alice's daemon refused her own name: %v", err)
		}
		if err := r.Usable("dev"); err != nil {
			t.Errorf("zone %s refused dev: %v", zone, err)
		}
	}
}
