package dns

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// TestConcurrentUpdates races Set, Remove and Replace against queries over
// UDP and TCP. Run with -race. Every answer must be either the name's one
// address or NXDOMAIN, never an error or a mix.
func TestConcurrentUpdates(t *testing.T) {
	s, addr := newTestServer(t, Config{}, Authoritative)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ip := netip.MustParseAddr("172.16.0.50")

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			switch i % 3 {
			case 0:
				if err := s.Set("flap", ip); err != nil {
					t.Error(err)
					return
				}
			case 1:
				s.Remove("flap")
			case 2:
				if err := s.Replace([]Record{{Name: "dev", IP: netip.MustParseAddr("172.16.0.2")}, {Name: "flap", IP: ip}}); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	var mu sync.Mutex
	counts := map[string]int{}
	for _, network := range []string{"udp", "tcp", "udp", "tcp"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &mdns.Client{Net: network, Timeout: 5 * time.Second}
			for n := 0; n < 300 && ctx.Err() == nil; n++ {
				name := []string{"flap.vm.", "dev.vm.", "50.0.16.172.in-addr.arpa."}[n%3]
				qt := []uint16{mdns.TypeA, mdns.TypeA, mdns.TypePTR}[n%3]
				r, _, err := c.Exchange(q(name, qt), addr)
				if err != nil {
					t.Errorf("%s query %s: %v", network, name, err)
					return
				}
				key := mdns.RcodeToString[r.Rcode]
				switch {
				case r.Rcode == mdns.RcodeNameError && name != "dev.vm.":
				case r.Rcode == mdns.RcodeSuccess && len(r.Answer) == 1:
					switch rr := r.Answer[0].(type) {
					case *mdns.A:
						if name == "flap.vm." && !rr.A.Equal(ip.AsSlice()) {
							t.Errorf("flap.vm answered %v", rr.A)
						}
					case *mdns.PTR:
						if rr.Ptr != "flap.vm." {
							t.Errorf("PTR answered %s", rr.Ptr)
						}
					}
				default:
					t.Errorf("%s %s: unexpected answer %v", network, name, r)
					return
				}
				mu.Lock()
				counts[name+" "+key]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if counts["flap.vm. NOERROR"] == 0 && counts["flap.vm. NXDOMAIN"] == 0 {
		t.Errorf("no flap.vm queries completed: %v", counts)
	}
	t.Logf("answers: %v", counts)
}

// fakeWriter is a ResponseWriter that packs what it is given.
type fakeWriter struct {
	local, remote net.Addr
	out           []byte
	err           error
}

func (w *fakeWriter) LocalAddr() net.Addr { return w.local }
func (w *fakeWriter) RemoteAddr() net.Addr {
	if w.remote != nil {
		return w.remote
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}
}
func (w *fakeWriter) WriteMsg(m *mdns.Msg) error {
	w.out, w.err = m.Pack()
	return w.err
}
func (w *fakeWriter) Write(b []byte) (int, error) { w.out = b; return len(b), nil }
func (w *fakeWriter) Close() error                { return nil }
func (w *fakeWriter) TsigStatus() error           { return nil }
func (w *fakeWriter) TsigTimersOnly(bool)         {}
func (w *fakeWriter) Hijack()                     {}

func packed(t testing.TB, m *mdns.Msg) []byte {
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzHandler feeds raw packets to the handler the way the server does
// (unpack, answer, pack) on both listener kinds. It must never panic, and
// every answer must pack and carry the query's ID. Forwarding has no
// upstreams here, so no packet leaves the process.
func FuzzHandler(f *testing.F) {
	seed := func(name string, qt uint16, edns bool) {
		m := q(name, qt)
		if edns {
			m.SetEdns0(4096, true)
		}
		f.Add(packed(f, m))
	}
	seed("dev.vm.", mdns.TypeA, false)
	seed("DEV.vm.", mdns.TypeANY, true)
	seed("vm.", mdns.TypeNS, true)
	seed("2.0.16.172.in-addr.arpa.", mdns.TypePTR, false)
	seed("16.172.in-addr.arpa.", mdns.TypeSOA, false)
	seed("example.com.", mdns.TypeA, true)
	seed("a.b.c.vm.", mdns.TypeAXFR, false)
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{})

	s, err := New(Config{Subnet: netip.MustParsePrefix("172.16.0.0/20")}, nil)
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	if err := s.Replace([]Record{
		{Name: "dev", IP: netip.MustParseAddr("172.16.0.2")},
		{Name: "web.prod", IP: netip.MustParseAddr("172.16.3.4")},
		{Name: "six", IP: netip.MustParseAddr("fd00::6")},
	}); err != nil {
		f.Fatal(err)
	}
	locals := []net.Addr{
		&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53},
		&net.TCPAddr{IP: net.IPv6loopback, Port: 53},
		nil,
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// The UDP path: raw bytes in, raw bytes out.
		for _, mode := range []Mode{Authoritative, Forwarding} {
			ans, fwd := s.respond(data, mode, netip.MustParseAddr("127.0.0.1"), nil)
			if fwd != nil {
				// No upstreams: forwarding answers SERVFAIL without sending.
				var err error
				if ans, err = s.forward(fwd).Pack(); err != nil {
					t.Fatalf("packing the forward answer to %x: %v", data, err)
				}
			}
			if ans == nil {
				if len(data) >= 12 && data[2]&0x80 == 0 {
					t.Fatalf("no answer to query %x", data)
				}
				continue
			}
			if len(ans) < 12 || ans[0] != data[0] || ans[1] != data[1] || ans[2]&0x80 == 0 {
				t.Fatalf("answer %x to %x lacks the query id or QR", ans, data)
			}
			if len(ans) > maxUDPPayload {
				t.Fatalf("UDP answer of %d bytes to %x", len(ans), data)
			}
		}
		// The TCP path: miekg/dns unpacks, the handler answers.
		req := new(mdns.Msg)
		if err := req.Unpack(data); err != nil {
			return
		}
		for i, mode := range []Mode{Authoritative, Forwarding} {
			w := &fakeWriter{local: locals[(len(data)+i)%len(locals)]}
			s.serve(w, req, mode)
			if w.err != nil {
				t.Fatalf("packing the answer to %v: %v", req, w.err)
			}
			if len(w.out) < 12 || binary.BigEndian.Uint16(w.out) != req.Id {
				t.Fatalf("answer to %v lacks the query id", req)
			}
		}
	})
}

// TestFlood sends a few thousand packets at a listener, valid queries mixed
// with garbage, short headers, oversized datagrams and junk TCP streams,
// without waiting for answers. Afterwards an ordinary query must still be
// answered and the server must shut down cleanly.
func TestFlood(t *testing.T) {
	s, addr := newTestServer(t, Config{}, Forwarding)
	valid := packed(t, q("dev.vm.", mdns.TypeA))
	outside := packed(t, q("example.com.", mdns.TypeA)) // no upstreams: SERVFAIL
	rng := rand.New(rand.NewPCG(1, 2))
	junk := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	oversized := append(append([]byte(nil), valid...), junk(9000)...)
	packets := [][]byte{valid, outside, junk(3), junk(12), junk(200), oversized, valid[:len(valid)-3]}

	tcpJunk := [][]byte{junk(100), junk(50)}

	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		conn, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				// Writes may fail with ECONNREFUSED echoes; that is fine.
				conn.Write(packets[(i*7+g)%len(packets)])
			}
		}()
	}
	for g := 0; g < 20; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(2 * time.Second))
			switch g % 3 {
			case 0: // a length prefix promising more than is sent
				conn.Write([]byte{0xff, 0xff, 1, 2, 3})
			case 1: // garbage framed correctly
				conn.Write(append([]byte{0, 100}, tcpJunk[0]...))
			case 2: // a valid query followed by junk
				conn.Write(append([]byte{0, byte(len(valid))}, valid...))
				conn.Write(tcpJunk[1])
			}
		}()
	}
	wg.Wait()

	// The socket buffer may still hold the flood's tail and drop a datagram,
	// so ask the way a stub resolver does: a few tries, a second each.
	for _, network := range []string{"udp", "tcp"} {
		c := &mdns.Client{Net: network, Timeout: time.Second}
		var r *mdns.Msg
		var err error
		for try := 0; try < 5; try++ {
			if r, _, err = c.Exchange(q("dev.vm.", mdns.TypeA), addr); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("%s query after the flood: %v", network, err)
		}
		if r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 {
			t.Errorf("%s after the flood: %v", network, r)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("closing after the flood: %v", err)
	}
}
