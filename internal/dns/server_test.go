package dns

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mdns "github.com/miekg/dns"
)

var testSubnet = netip.MustParsePrefix("172.16.0.0/24")

// newTestServer returns a server with dev.vm at 172.16.0.2, listening in
// mode on an ephemeral loopback port, and that port's address.
func newTestServer(t *testing.T, cfg Config, mode Mode) (*Server, string) {
	t.Helper()
	if !cfg.Subnet.IsValid() {
		cfg.Subnet = testSubnet
	}
	s, err := New(cfg, warnLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := s.Set("dev", netip.MustParseAddr("172.16.0.2")); err != nil {
		t.Fatal(err)
	}
	addr, err := s.Listen("127.0.0.1:0", mode)
	if err != nil {
		t.Fatal(err)
	}
	return s, addr.String()
}

// newRecordServer returns a server with name registered at 172.16.0.2
// and no listener, closed when the test ends.
func newRecordServer(t testing.TB, name string) *Server {
	t.Helper()
	s, err := New(Config{Subnet: testSubnet}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Set(name, netip.MustParseAddr("172.16.0.2")); err != nil {
		t.Fatal(err)
	}
	return s
}

// warnLogger returns a logger that fails the test, after the server has
// closed, when anything was logged at warning level or above (a listener
// that died, a handler that panicked).
func warnLogger(t *testing.T) *slog.Logger {
	var mu sync.Mutex
	var buf strings.Builder
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if buf.Len() > 0 {
			t.Errorf("server logged:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func query(t *testing.T, network, addr string, m *mdns.Msg) *mdns.Msg {
	t.Helper()
	c := &mdns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s query %v to %s: %v", network, m.Question, addr, err)
	}
	if r.Id != m.Id {
		t.Fatalf("reply id %d, want %d", r.Id, m.Id)
	}
	return r
}

func q(name string, qtype uint16) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

// summary renders a response compactly so cases compare as strings.
type summary struct {
	Rcode  string
	AA, TC bool
	Answer []string
	Ns     []string
	Extra  []string
}

func summarize(r *mdns.Msg) summary {
	s := summary{Rcode: mdns.RcodeToString[r.Rcode], AA: r.Authoritative, TC: r.Truncated}
	render := func(rrs []mdns.RR) []string {
		var out []string
		for _, rr := range rrs {
			if rr.Header().Rrtype == mdns.TypeOPT {
				continue
			}
			if soa, ok := rr.(*mdns.SOA); ok {
				out = append(out, fmt.Sprintf("%s %d SOA %s %s %d", soa.Hdr.Name, soa.Hdr.Ttl, soa.Ns, soa.Mbox, soa.Minttl))
				continue
			}
			out = append(out, strings.ReplaceAll(rr.String(), "\t", " "))
		}
		return out
	}
	s.Answer, s.Ns, s.Extra = render(r.Answer), render(r.Ns), render(r.Extra)
	return s
}

const (
	soaVM  = "vm. 5 SOA vm. hostmaster.vm. 5"
	soaRev = "0.16.172.in-addr.arpa. 5 SOA vm. hostmaster.vm. 5"
)

func TestAnswers(t *testing.T) {
	cases := []struct {
		name  string
		qname string
		qtype uint16
		want  summary
	}{
		{"A of a VM", "dev.vm.", mdns.TypeA, summary{Rcode: "NOERROR", AA: true, Answer: []string{"dev.vm. 5 IN A 172.16.0.2"}}},
		{"case-insensitive", "DeV.Vm.", mdns.TypeA, summary{Rcode: "NOERROR", AA: true, Answer: []string{"DeV.Vm. 5 IN A 172.16.0.2"}}},
		{"other type of a known name", "dev.vm.", mdns.TypeAAAA, summary{Rcode: "NOERROR", AA: true, Ns: []string{soaVM}}},
		{"MX of a known name", "dev.vm.", mdns.TypeMX, summary{Rcode: "NOERROR", AA: true, Ns: []string{soaVM}}},
		{"unknown name", "nope.vm.", mdns.TypeA, summary{Rcode: "NXDOMAIN", AA: true, Ns: []string{soaVM}}},
		{"below a known name", "x.dev.vm.", mdns.TypeA, summary{Rcode: "NXDOMAIN", AA: true, Ns: []string{soaVM}}},
		{"apex SOA", "vm.", mdns.TypeSOA, summary{Rcode: "NOERROR", AA: true, Answer: []string{soaVM}}},
		{"apex NS with glue", "vm.", mdns.TypeNS, summary{Rcode: "NOERROR", AA: true,
			Answer: []string{"vm. 5 IN NS vm."}, Extra: []string{"vm. 5 IN A 127.0.0.1"}}},
		{"apex A is the listener", "vm.", mdns.TypeA, summary{Rcode: "NOERROR", AA: true, Answer: []string{"vm. 5 IN A 127.0.0.1"}}},
		{"apex other type", "vm.", mdns.TypeTXT, summary{Rcode: "NOERROR", AA: true, Ns: []string{soaVM}}},
		{"outside the zone", "example.com.", mdns.TypeA, summary{Rcode: "REFUSED"}},
		{"zone as a suffix only", "notvm.", mdns.TypeA, summary{Rcode: "REFUSED"}},
		{"PTR of a VM", "2.0.16.172.in-addr.arpa.", mdns.TypePTR, summary{Rcode: "NOERROR", AA: true,
			Answer: []string{"2.0.16.172.in-addr.arpa. 5 IN PTR dev.vm."}}},
		{"PTR of a free address", "9.0.16.172.in-addr.arpa.", mdns.TypePTR, summary{Rcode: "NXDOMAIN", AA: true, Ns: []string{soaRev}}},
		{"A of a VM's reverse name", "2.0.16.172.in-addr.arpa.", mdns.TypeA, summary{Rcode: "NOERROR", AA: true, Ns: []string{soaRev}}},
		{"reverse apex SOA", "0.16.172.in-addr.arpa.", mdns.TypeSOA, summary{Rcode: "NOERROR", AA: true, Answer: []string{soaRev}}},
		{"reverse apex NS", "0.16.172.in-addr.arpa.", mdns.TypeNS, summary{Rcode: "NOERROR", AA: true,
			Answer: []string{"0.16.172.in-addr.arpa. 5 IN NS vm."}, Extra: []string{"vm. 5 IN A 127.0.0.1"}}},
		{"PTR outside the subnet", "2.1.16.172.in-addr.arpa.", mdns.TypePTR, summary{Rcode: "REFUSED"}},
		{"AXFR", "vm.", mdns.TypeAXFR, summary{Rcode: "REFUSED"}},
	}
	_, addr := newTestServer(t, Config{}, Authoritative)
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range cases {
			t.Run(network+"/"+tc.name, func(t *testing.T) {
				if tc.qtype == mdns.TypeAXFR && network == "udp" {
					t.Skip("AXFR is TCP only")
				}
				got := summarize(query(t, network, addr, q(tc.qname, tc.qtype)))
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("%s %s (-want +got):\n%s", tc.qname, mdns.TypeToString[tc.qtype], diff)
				}
			})
		}
	}
}

func TestEmptyNonTerminalAndANY(t *testing.T) {
	s, addr := newTestServer(t, Config{}, Authoritative)
	if err := s.Set("web.prod", netip.MustParseAddr("172.16.0.7")); err != nil {
		t.Fatal(err)
	}
	got := summarize(query(t, "udp", addr, q("prod.vm.", mdns.TypeA)))
	want := summary{Rcode: "NOERROR", AA: true, Ns: []string{soaVM}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("empty non-terminal (-want +got):\n%s", diff)
	}
	got = summarize(query(t, "tcp", addr, q("web.prod.vm.", mdns.TypeANY)))
	want = summary{Rcode: "NOERROR", AA: true, Answer: []string{"web.prod.vm. 5 IN A 172.16.0.7"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ANY (-want +got):\n%s", diff)
	}
}

func TestEDNS(t *testing.T) {
	_, addr := newTestServer(t, Config{}, Authoritative)
	for _, network := range []string{"udp", "tcp"} {
		m := q("dev.vm.", mdns.TypeA)
		m.SetEdns0(4096, true)
		r := query(t, network, addr, m)
		opt := r.IsEdns0()
		if opt == nil {
			t.Fatalf("%s: no OPT in the answer to an EDNS query", network)
		}
		if opt.UDPSize() != maxUDPPayload || !opt.Do() || opt.Version() != 0 {
			t.Errorf("%s: OPT size %d do %v version %d, want %d true 0", network, opt.UDPSize(), opt.Do(), opt.Version(), maxUDPPayload)
		}
		if len(r.Answer) != 1 {
			t.Errorf("%s: %d answers, want 1", network, len(r.Answer))
		}

		if r := query(t, network, addr, q("dev.vm.", mdns.TypeA)); r.IsEdns0() != nil {
			t.Errorf("%s: OPT in the answer to a query without EDNS", network)
		}

		m = q("dev.vm.", mdns.TypeA)
		m.SetEdns0(1232, false)
		m.IsEdns0().SetVersion(1)
		r = query(t, network, addr, m)
		if r.Rcode != mdns.RcodeBadVers || r.IsEdns0() == nil || len(r.Answer) != 0 {
			t.Errorf("%s: EDNS version 1: rcode %s opt %v answers %d, want BADVERS with OPT and no answer",
				network, mdns.RcodeToString[r.Rcode], r.IsEdns0(), len(r.Answer))
		}
	}
}

func TestRejects(t *testing.T) {
	_, addr := newTestServer(t, Config{}, Authoritative)
	for _, network := range []string{"udp", "tcp"} {
		m := q("dev.vm.", mdns.TypeSOA)
		m.Opcode = mdns.OpcodeNotify
		if r := query(t, network, addr, m); r.Rcode != mdns.RcodeNotImplemented {
			t.Errorf("%s: NOTIFY got %s, want NOTIMP", network, mdns.RcodeToString[r.Rcode])
		}
		m = q("dev.vm.", mdns.TypeA)
		m.Opcode = mdns.OpcodeUpdate
		if r := query(t, network, addr, m); r.Rcode != mdns.RcodeNotImplemented {
			t.Errorf("%s: UPDATE got %s, want NOTIMP", network, mdns.RcodeToString[r.Rcode])
		}
		m = q("dev.vm.", mdns.TypeA)
		m.Question[0].Qclass = mdns.ClassCHAOS
		if r := query(t, network, addr, m); r.Rcode != mdns.RcodeRefused {
			t.Errorf("%s: CHAOS got %s, want REFUSED", network, mdns.RcodeToString[r.Rcode])
		}
		m = q("dev.vm.", mdns.TypeA)
		m.Question = append(m.Question, m.Question[0])
		if r := query(t, network, addr, m); r.Rcode != mdns.RcodeFormatError {
			t.Errorf("%s: two questions got %s, want FORMERR", network, mdns.RcodeToString[r.Rcode])
		}
	}
}

func TestUpdatesVisibleToNextQuery(t *testing.T) {
	s, addr := newTestServer(t, Config{}, Authoritative)
	ip := netip.MustParseAddr("172.16.0.9")
	for i := 0; i < 50; i++ {
		network := []string{"udp", "tcp"}[i%2]
		if err := s.Set("web", ip); err != nil {
			t.Fatal(err)
		}
		if r := query(t, network, addr, q("web.vm.", mdns.TypeA)); r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 {
			t.Fatalf("round %d: after Set got %s with %d answers", i, mdns.RcodeToString[r.Rcode], len(r.Answer))
		}
		if !s.Remove("web") {
			t.Fatal("Remove of a registered name reported false")
		}
		if r := query(t, network, addr, q("web.vm.", mdns.TypeA)); r.Rcode != mdns.RcodeNameError {
			t.Fatalf("round %d: after Remove got %s", i, mdns.RcodeToString[r.Rcode])
		}
	}
	if err := s.Replace([]Record{{Name: "a", IP: netip.MustParseAddr("172.16.0.3")}, {Name: "b", IP: netip.MustParseAddr("172.16.0.4")}}); err != nil {
		t.Fatal(err)
	}
	if s.Count() != 2 {
		t.Errorf("Count after Replace = %d, want 2", s.Count())
	}
	if r := query(t, "udp", addr, q("dev.vm.", mdns.TypeA)); r.Rcode != mdns.RcodeNameError {
		t.Errorf("dev.vm after Replace without it: %s, want NXDOMAIN", mdns.RcodeToString[r.Rcode])
	}
	got := summarize(query(t, "udp", addr, q("4.0.16.172.in-addr.arpa.", mdns.TypePTR)))
	if diff := cmp.Diff([]string{"4.0.16.172.in-addr.arpa. 5 IN PTR b.vm."}, got.Answer); diff != "" {
		t.Errorf("PTR after Replace (-want +got):\n%s", diff)
	}
}

func TestListenRefusesNonLoopback(t *testing.T) {
	gw := netip.MustParseAddr("192.0.2.1") // TEST-NET-1: never bound here
	s, err := New(Config{AllowedAddrs: []netip.Addr{gw}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", "10.1.2.3:0", "localhost:0", "127.0.0.1"} {
		if _, err := s.Listen(addr, Authoritative); err == nil {
			t.Errorf("Listen(%q) succeeded, want refusal", addr)
		}
	}
	// The allowed gateway passes the check and then fails to bind, since
	// this host does not own it: the error must come from binding.
	if _, err := s.Listen("192.0.2.1:0", Forwarding); err == nil || strings.Contains(err.Error(), "refusing") {
		t.Errorf("Listen on the allowed gateway: %v, want a bind error", err)
	}
	a, err := s.Listen("127.0.0.1:0", Authoritative)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Listen("127.0.0.2:0", Forwarding)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{a.String(), b.String()}, s.Listeners()); diff != "" {
		t.Errorf("Listeners (-want +got):\n%s", diff)
	}
	// Each listener names itself as the zone's name server.
	got := summarize(query(t, "udp", b.String(), q("vm.", mdns.TypeA)))
	if diff := cmp.Diff([]string{"vm. 5 IN A 127.0.0.2"}, got.Answer); diff != "" {
		t.Errorf("apex A on the second listener (-want +got):\n%s", diff)
	}
	if err := s.CloseListener(b.String()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{a.String()}, s.Listeners()); diff != "" {
		t.Errorf("Listeners after CloseListener (-want +got):\n%s", diff)
	}
	if _, err := net.Dial("tcp", b.String()); err == nil {
		t.Error("closed listener still accepts TCP")
	}
}

func TestRecordValidation(t *testing.T) {
	s, err := New(Config{Subnet: testSubnet}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ip := netip.MustParseAddr("172.16.0.5")
	for _, name := range []string{"", ".", "dev.", ".dev", "a..b", "has space", strings.Repeat("x", 64), "back\\slash"} {
		if err := s.Set(name, ip); err == nil {
			t.Errorf("Set(%q) succeeded, want error", name)
		}
	}
	if err := s.Set("ok", netip.Addr{}); err == nil {
		t.Error("Set with an invalid address succeeded")
	}
	if err := s.Set("Mixed-Case", ip); err != nil {
		t.Fatal(err)
	}
	if got, ok := s.Lookup("mixed-case"); !ok || got != ip {
		t.Errorf("Lookup(mixed-case) = %v %v, want %v", got, ok, ip)
	}
	err = s.Replace([]Record{{Name: "good", IP: ip}, {Name: "bad name", IP: ip}})
	if err == nil || !strings.Contains(err.Error(), "bad name") {
		t.Errorf("Replace with a bad record: %v, want an error naming it", err)
	}
	if s.Count() != 1 {
		t.Errorf("Count after a failed Replace = %d, want 1 (unchanged)", s.Count())
	}
	if s.Remove("absent") {
		t.Error("Remove of an absent name reported true")
	}
}

func TestNewValidatesConfig(t *testing.T) {
	for _, cfg := range []Config{
		{TTL: 10 * time.Second},
		{TTL: time.Millisecond},
		{Subnet: netip.MustParsePrefix("fd00::/64")},
		{Upstreams: []string{"dns.example"}},
	} {
		if s, err := New(cfg, nil); err == nil {
			s.Close()
			t.Errorf("New(%+v) succeeded, want error", cfg)
		}
	}
}

func TestReverseZones(t *testing.T) {
	cases := []struct {
		subnet string
		want   []string
	}{
		{"172.16.0.0/24", []string{"0.16.172.in-addr.arpa."}},
		{"172.16.0.0/16", []string{"16.172.in-addr.arpa."}},
		{"10.0.0.0/8", []string{"10.in-addr.arpa."}},
		{"172.16.0.9/28", []string{"0.16.172.in-addr.arpa."}},
		{"172.16.4.0/22", []string{"4.16.172.in-addr.arpa.", "5.16.172.in-addr.arpa.", "6.16.172.in-addr.arpa.", "7.16.172.in-addr.arpa."}},
	}
	for _, tc := range cases {
		got, err := reverseZones(netip.MustParsePrefix(tc.subnet))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("reverseZones(%s) (-want +got):\n%s", tc.subnet, diff)
		}
	}
	if got, _ := reverseZones(netip.MustParsePrefix("172.16.0.0/17")); len(got) != 128 {
		t.Errorf("reverseZones(/17) gave %d zones, want 128", len(got))
	}
}

func TestParseReverse(t *testing.T) {
	for name, want := range map[string]string{
		"4.3.2.1.in-addr.arpa.":      "1.2.3.4",
		"255.0.16.172.in-addr.arpa.": "172.16.0.255",
	} {
		got, ok := parseReverse(name)
		if !ok || got.String() != want {
			t.Errorf("parseReverse(%q) = %v %v, want %s", name, got, ok, want)
		}
	}
	for _, name := range []string{"3.2.1.in-addr.arpa.", "256.3.2.1.in-addr.arpa.", "04.3.2.1.in-addr.arpa.", "x.3.2.1.in-addr.arpa.", "4.3.2.1.ip6.arpa."} {
		if got, ok := parseReverse(name); ok {
			t.Errorf("parseReverse(%q) = %v, want failure", name, got)
		}
	}
}

// TestUserZoneWithVMAlias: a user's daemon serves NAME.alice.vm and, for
// the user's guests, the same names under vm.
func TestUserZoneWithVMAlias(t *testing.T) {
	const soaAlice = "alice.vm. 5 SOA alice.vm. hostmaster.alice.vm. 5"
	cases := []struct {
		qname string
		want  summary
	}{
		{"dev.alice.vm.", summary{Rcode: "NOERROR", AA: true, Answer: []string{"dev.alice.vm. 5 IN A 172.16.0.2"}}},
		{"dev.vm.", summary{Rcode: "NOERROR", AA: true, Answer: []string{"dev.vm. 5 IN A 172.16.0.2"}}},
		{"nope.vm.", summary{Rcode: "NXDOMAIN", AA: true, Ns: []string{"vm. 5 SOA alice.vm. hostmaster.alice.vm. 5"}}},
		{"nope.alice.vm.", summary{Rcode: "NXDOMAIN", AA: true, Ns: []string{soaAlice}}},
		{"dev.bob.vm.", summary{Rcode: "NXDOMAIN", AA: true, Ns: []string{"vm. 5 SOA alice.vm. hostmaster.alice.vm. 5"}}},
		{"example.com.", summary{Rcode: "REFUSED"}},
	}
	_, addr := newTestServer(t, Config{Zone: "alice.vm.", Aliases: []string{"vm."}}, Authoritative)
	for _, tc := range cases {
		got := summarize(query(t, "udp", addr, q(tc.qname, mdns.TypeA)))
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.qname, diff)
		}
	}
	ptr := summarize(query(t, "udp", addr, q("2.0.16.172.in-addr.arpa.", mdns.TypePTR)))
	if len(ptr.Answer) != 1 || !strings.HasSuffix(ptr.Answer[0], "PTR dev.alice.vm.") {
		t.Errorf("PTR names the user's zone: %+v", ptr)
	}
	if _, err := New(Config{Zone: "alice.vm.", Aliases: []string{"alice.vm."}}, nil); err == nil {
		t.Error("an alias equal to the zone was accepted")
	}
}
