package dns

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	mdns "github.com/miekg/dns"
)

// fakeUpstream is a resolver on loopback that answers:
//   - example.com. A 192.0.2.10;
//   - big.example. with 40 A records (about 700 bytes);
//   - tc.example. truncated and empty over UDP, in full over TCP;
//
// and NXDOMAIN otherwise. It records the queries it saw.
type fakeUpstream struct {
	addr string
	mu   sync.Mutex
	seen []string // "udp example.com. A"
}

func startFakeUpstream(t *testing.T) *fakeUpstream {
	t.Helper()
	f := &fakeUpstream{}
	us, tl, err := bindPair(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	// miekg's server wants a net.PacketConn: hand it the socket.
	file := os.NewFile(uintptr(us.fd), "udp")
	pc, err := net.FilePacketConn(file)
	file.Close()
	if err != nil {
		t.Fatal(err)
	}
	f.addr = pc.LocalAddr().String()
	for _, srv := range []*mdns.Server{
		{PacketConn: pc, Handler: f.handler("udp")},
		{Listener: tl, Handler: f.handler("tcp")},
	} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
	return f
}

func (f *fakeUpstream) handler(network string) mdns.HandlerFunc {
	return func(w mdns.ResponseWriter, req *mdns.Msg) {
		q := req.Question[0]
		f.mu.Lock()
		f.seen = append(f.seen, fmt.Sprintf("%s %s %s", network, q.Name, mdns.TypeToString[q.Qtype]))
		f.mu.Unlock()
		resp := new(mdns.Msg)
		resp.SetReply(req)
		resp.RecursionAvailable = true
		if opt := req.IsEdns0(); opt != nil {
			resp.SetEdns0(opt.UDPSize(), false)
		}
		a := func(i int) mdns.RR {
			return &mdns.A{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 300}, A: net.IPv4(192, 0, 2, byte(10+i))}
		}
		switch q.Name {
		case "example.com.":
			resp.Answer = []mdns.RR{a(0)}
		case "big.example.":
			for i := 0; i < 40; i++ {
				resp.Answer = append(resp.Answer, a(i))
			}
		case "tc.example.":
			if network == "udp" {
				resp.Truncated = true
			} else {
				resp.Answer = []mdns.RR{a(5)}
			}
		default:
			resp.Rcode = mdns.RcodeNameError
		}
		w.WriteMsg(resp)
	}
}

func (f *fakeUpstream) queries() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.seen...)
}

func TestForwarding(t *testing.T) {
	up := startFakeUpstream(t)
	s, addr := newTestServer(t, Config{Upstreams: []string{up.addr}}, Forwarding)
	host, err := s.Listen("127.0.0.1:0", Authoritative)
	if err != nil {
		t.Fatal(err)
	}

	for _, network := range []string{"udp", "tcp"} {
		r := query(t, network, addr, q("example.com.", mdns.TypeA))
		got := summarize(r)
		want := summary{Rcode: "NOERROR", Answer: []string{"example.com. 300 IN A 192.0.2.10"}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s forwarded answer (-want +got):\n%s", network, diff)
		}
		if !r.RecursionAvailable {
			t.Errorf("%s: forwarded answer without RA", network)
		}
		// The zone itself is still answered locally, with RA on this listener.
		r = query(t, network, addr, q("dev.vm.", mdns.TypeA))
		if len(r.Answer) != 1 || !r.Authoritative || !r.RecursionAvailable {
			t.Errorf("%s: dev.vm on the forwarding listener: %v", network, r)
		}
		// The host listener never forwards.
		if r := query(t, network, host.String(), q("example.com.", mdns.TypeA)); r.Rcode != mdns.RcodeRefused {
			t.Errorf("%s: host listener answered %s for an outside name, want REFUSED", network, mdns.RcodeToString[r.Rcode])
		}
	}
	if r := query(t, "udp", addr, q("missing.example.", mdns.TypeA)); r.Rcode != mdns.RcodeNameError {
		t.Errorf("upstream NXDOMAIN relayed as %s", mdns.RcodeToString[r.Rcode])
	}
	want := []string{"udp example.com. A", "udp example.com. A", "udp missing.example. A"}
	if diff := cmp.Diff(want, up.queries()); diff != "" {
		t.Errorf("upstream saw (-want +got):\n%s", diff)
	}
}

func TestForwardingTruncation(t *testing.T) {
	up := startFakeUpstream(t)
	_, addr := newTestServer(t, Config{Upstreams: []string{up.addr}}, Forwarding)

	// Upstream truncates over UDP: the server retries over TCP.
	r := query(t, "udp", addr, q("tc.example.", mdns.TypeA))
	if r.Truncated || len(r.Answer) != 1 {
		t.Errorf("tc.example: TC %v with %d answers, want the full TCP answer", r.Truncated, len(r.Answer))
	}
	if diff := cmp.Diff([]string{"udp tc.example. A", "tcp tc.example. A"}, up.queries()); diff != "" {
		t.Errorf("upstream saw (-want +got):\n%s", diff)
	}

	// A large answer is cut to the client's UDP size with TC set ...
	r = query(t, "udp", addr, q("big.example.", mdns.TypeA))
	if !r.Truncated || len(r.Answer) >= 40 {
		t.Errorf("big.example over UDP without EDNS: TC %v with %d answers, want TC and fewer than 40", r.Truncated, len(r.Answer))
	}
	// ... fits with a large enough EDNS buffer ...
	m := q("big.example.", mdns.TypeA)
	m.SetEdns0(1232, false)
	if r := query(t, "udp", addr, m); r.Truncated || len(r.Answer) != 40 || r.IsEdns0() == nil {
		t.Errorf("big.example over UDP with EDNS 1232: TC %v, %d answers, OPT %v", r.Truncated, len(r.Answer), r.IsEdns0())
	}
	// ... and comes whole over TCP.
	if r := query(t, "tcp", addr, q("big.example.", mdns.TypeA)); r.Truncated || len(r.Answer) != 40 {
		t.Errorf("big.example over TCP: TC %v with %d answers, want 40", r.Truncated, len(r.Answer))
	}
}

func TestForwardingFailures(t *testing.T) {
	// A port nobody listens on: the upstream is unreachable.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := pc.LocalAddr().String()
	pc.Close()

	s, addr := newTestServer(t, Config{Upstreams: []string{dead}}, Forwarding)
	if r := query(t, "udp", addr, q("example.com.", mdns.TypeA)); r.Rcode != mdns.RcodeServerFailure {
		t.Errorf("dead upstream: %s, want SERVFAIL", mdns.RcodeToString[r.Rcode])
	}
	// The second upstream is used when the first fails.
	up := startFakeUpstream(t)
	if err := s.SetUpstreams([]string{dead, up.addr}); err != nil {
		t.Fatal(err)
	}
	if r := query(t, "udp", addr, q("example.com.", mdns.TypeA)); len(r.Answer) != 1 {
		t.Errorf("fallback upstream: %s with %d answers", mdns.RcodeToString[r.Rcode], len(r.Answer))
	}
	// The server never forwards to itself.
	if err := s.SetUpstreams([]string{addr}); err != nil {
		t.Fatal(err)
	}
	if r := query(t, "udp", addr, q("example.com.", mdns.TypeA)); r.Rcode != mdns.RcodeServerFailure {
		t.Errorf("self as upstream: %s, want SERVFAIL", mdns.RcodeToString[r.Rcode])
	}
	if err := s.SetUpstreams(nil); err != nil {
		t.Fatal(err)
	}
	if r := query(t, "tcp", addr, q("example.com.", mdns.TypeA)); r.Rcode != mdns.RcodeServerFailure {
		t.Errorf("no upstreams: %s, want SERVFAIL", mdns.RcodeToString[r.Rcode])
	}
}

func TestUpstreamsFrom(t *testing.T) {
	files := func(m map[string]string) func(string) ([]byte, error) {
		return func(p string) ([]byte, error) {
			if s, ok := m[p]; ok {
				return []byte(s), nil
			}
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		}
	}
	resolved := "# This is /run/systemd/resolve/resolv.conf managed by man:systemd-resolved(8).\nnameserver 192.168.1.1\nnameserver fe80::1%eth0\nsearch lan\n"
	cases := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"plain", map[string]string{ResolvConf: "nameserver 1.1.1.1\nnameserver 2606:4700:4700::1111\noptions edns0\n"},
			[]string{"1.1.1.1:53", "[2606:4700:4700::1111]:53"}},
		{"resolved stub", map[string]string{ResolvConf: "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n", ResolvedResolvConf: resolved},
			[]string{"192.168.1.1:53", "[fe80::1%eth0]:53"}},
		{"stub without resolved file", map[string]string{ResolvConf: "nameserver 127.0.0.53\n"}, []string{"127.0.0.53:53"}},
		{"local dnsmasq", map[string]string{ResolvConf: "nameserver 127.0.0.1\n", ResolvedResolvConf: resolved}, []string{"127.0.0.1:53"}},
	}
	for _, tc := range cases {
		got, err := upstreamsFrom(files(tc.files))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	if _, err := upstreamsFrom(files(nil)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no resolv.conf: %v, want ErrNotExist", err)
	}
	if _, err := upstreamsFrom(files(map[string]string{ResolvConf: "search lan\n"})); err == nil {
		t.Error("resolv.conf without nameservers: want error")
	}
}

// TestForwardingOnlyForGuestsAndHost checks that the forwarding listener is
// not an open resolver: a client outside the VM subnet and loopback (which
// can reach the bridge address from another network) gets REFUSED for
// outside names, while the zone is still answered.
func TestForwardingOnlyForGuestsAndHost(t *testing.T) {
	up := startFakeUpstream(t)
	s, _ := newTestServer(t, Config{Upstreams: []string{up.addr}}, Forwarding)
	local := &net.TCPAddr{IP: net.IPv4(172, 16, 0, 1), Port: 53}
	for _, tc := range []struct {
		client string
		qname  string
		want   int
	}{
		{"192.168.1.50", "example.com.", mdns.RcodeRefused},
		{"192.168.1.50", "dev.vm.", mdns.RcodeSuccess},
		{"172.16.0.2", "example.com.", mdns.RcodeSuccess},
		{"127.0.0.1", "example.com.", mdns.RcodeSuccess},
	} {
		w := &fakeWriter{local: local, remote: &net.TCPAddr{IP: net.ParseIP(tc.client), Port: 40000}}
		s.serve(w, q(tc.qname, mdns.TypeA), Forwarding)
		r := new(mdns.Msg)
		if err := r.Unpack(w.out); err != nil {
			t.Fatal(err)
		}
		if r.Rcode != tc.want {
			t.Errorf("%s asking %s: %s, want %s", tc.client, tc.qname, mdns.RcodeToString[r.Rcode], mdns.RcodeToString[tc.want])
		}
	}
	if diff := cmp.Diff([]string{"udp example.com. A", "udp example.com. A"}, up.queries()); diff != "" {
		t.Errorf("upstream saw (-want +got):\n%s", diff)
	}
}
