package daemon

import (
	"log/slog"
	"net/netip"
	"testing"

	"banger/internal/dns"
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
