package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"banger/internal/dns"
)

func TestBridgeResolverReappliesDNSSetupOnce(t *testing.T) {
	for _, setUp := range []bool{false, true} {
		srv, err := dns.New(dns.Config{Subnet: netip.MustParsePrefix("10.213.0.0/24")}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		marker := filepath.Join(t.TempDir(), dns.SetupMarker)
		if setUp {
			if err := os.WriteFile(marker, []byte("resolved\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		calls := 0
		r := &dnsRecords{srv: srv, guestAddr: "127.0.0.1:0", log: slog.New(slog.DiscardHandler), marker: marker,
			resolver: func(context.Context) error { calls++; return nil }}
		for i := 0; i < 2; i++ {
			if err := r.listenOnBridge(); err != nil {
				t.Fatal(err)
			}
		}
		want := 0
		if setUp {
			want = 1
		}
		if calls != want {
			t.Errorf("dns setup recorded %v: resolver re-applied %d times, want %d", setUp, calls, want)
		}
		if n := len(srv.Listeners()); n != 1 {
			t.Errorf("listeners = %d, want the one guest listener", n)
		}
	}
}
