package dns

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"golang.org/x/net/ipv4"
)

// The in-process DNS benchmark compares the server, running inside the
// test binary, with dnsmasq on loopback, with our own load client: bench.vm
// A, answered from memory by both.
//
//	go test -run '^$' -bench '^BenchmarkDNS$' -count 5 ./internal/dns
//
// The figures that count come from bench/dns.sh, which drives the real
// bangerd and dnsmasq with dnsperf; it prints this one as an extra row.
// Sub-benchmarks report qps and, for one query in flight, p50-µs/p99-µs.

const benchName = "bench.vm."

func BenchmarkDNS(b *testing.B) {
	servers := []struct{ name, addr string }{
		{"banger", startBangerForBench(b)},
		{"dnsmasq", startDnsmasqForBench(b)},
	}
	for _, inflight := range []int{8, 1} {
		for _, srv := range servers {
			b.Run(fmt.Sprintf("inflight=%d/server=%s", inflight, srv.name), func(b *testing.B) {
				runLoad(b, srv.addr, inflight)
			})
		}
	}
}

func startBangerForBench(b *testing.B) string {
	s, err := New(Config{Subnet: testSubnet}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if err := s.Set("bench", netip.MustParseAddr("172.16.0.2")); err != nil {
		b.Fatal(err)
	}
	a, err := s.Listen("127.0.0.1:0", Authoritative)
	if err != nil {
		b.Fatal(err)
	}
	return a.String()
}

// startDnsmasqForBench starts dnsmasq on a free loopback port with only
// bench.vm configured, waits until it answers, and kills it (by pid) when
// the benchmark ends.
func startDnsmasqForBench(b *testing.B) string {
	path, err := exec.LookPath("dnsmasq")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/dnsmasq"); serr != nil {
			b.Skip("dnsmasq is not installed (apt-get install dnsmasq-base)")
		}
		path = "/usr/sbin/dnsmasq"
	}
	// A port free for both UDP and TCP, released just before dnsmasq binds it.
	pc, tl, err := bindPair(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		b.Fatal(err)
	}
	port := int(pc.local.Port())
	pc.close()
	tl.Close()
	args := []string{
		"--no-daemon", "--conf-file=/dev/null", "--pid-file=",
		"--port=" + strconv.Itoa(port), "--listen-address=127.0.0.1", "--bind-interfaces",
		"--no-resolv", "--no-hosts", "--local-ttl=5",
		"--host-record=bench.vm,172.16.0.2",
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	cmd := exec.Command(path, args...)
	out, err := os.CreateTemp(b.TempDir(), "dnsmasq-*.log")
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		b.Fatalf("starting dnsmasq: %v", err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c := &mdns.Client{Timeout: 100 * time.Millisecond}
	for deadline := time.Now().Add(5 * time.Second); ; {
		if r, _, err := c.Exchange(q(benchName, mdns.TypeA), addr); err == nil && len(r.Answer) == 1 {
			return addr
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(out.Name())
			b.Fatalf("dnsmasq did not answer on %s: %s", addr, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runLoad sends b.N queries for bench.vm A over UDP from one connected
// socket, keeping inflight queries outstanding, and checks every answer.
// With one in flight it times each query; with more it moves datagrams in
// batches (sendmmsg/recvmmsg, like dnsperf's single-socket loop) so the
// client spends as little CPU as possible and the server is what is measured.
func runLoad(b *testing.B, addr string, inflight int) {
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Minute))
	query := packed(b, q(benchName, mdns.TypeA))
	check := func(buf []byte) error {
		// Header: id, flags (rcode in the low 4 bits), qd, an counts.
		if len(buf) < 12 || buf[2]&0x80 == 0 || buf[3]&0xf != 0 || binary.BigEndian.Uint16(buf[6:]) != 1 {
			return fmt.Errorf("bad answer %x", buf)
		}
		return nil
	}
	b.ResetTimer()
	start := time.Now()
	if inflight == 1 {
		lat := make([]time.Duration, 0, b.N)
		buf := make([]byte, 1500)
		for i := range b.N {
			binary.BigEndian.PutUint16(query, uint16(i))
			t0 := time.Now()
			if _, err := conn.Write(query); err != nil {
				b.Fatal(err)
			}
			n, err := conn.Read(buf)
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
			if err := check(buf[:n]); err != nil || binary.BigEndian.Uint16(buf) != uint16(i) {
				b.Fatalf("query %d: %v", i, err)
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "qps")
		slices.Sort(lat)
		pct := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)].Nanoseconds()) / 1e3 }
		b.ReportMetric(pct(0.50), "p50-µs")
		b.ReportMetric(pct(0.99), "p99-µs")
		return
	}
	pc := ipv4.NewPacketConn(conn)
	in := make([]ipv4.Message, inflight)
	out := make([]ipv4.Message, inflight)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, 1500)}
		out[i].Buffers = [][]byte{slices.Clone(query)}
	}
	sent, done := 0, 0
	send := func(n int) {
		n = min(n, b.N-sent)
		for i := range n {
			binary.BigEndian.PutUint16(out[i].Buffers[0], uint16(sent+i))
		}
		for off := 0; off < n; {
			m, err := pc.WriteBatch(out[off:n], 0)
			if err != nil {
				b.Fatal(err)
			}
			off += m
		}
		sent += n
	}
	send(inflight)
	for done < b.N {
		n, err := pc.ReadBatch(in, 0)
		if err != nil {
			b.Fatalf("load against %s after %d answers: %v", addr, done, err)
		}
		for i := range n {
			if err := check(in[i].Buffers[0][:in[i].N]); err != nil {
				b.Fatal(err)
			}
		}
		done += n
		send(n)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "qps")
}

// BenchmarkRespond measures answering one raw query in memory, without
// sockets: the server's own cost per query, building the answer with
// miekg/dns ("built") or copying it from the UDP reader's cache ("cached").
func BenchmarkRespond(b *testing.B) {
	s := newRecordServer(b, "bench")
	pkt := packed(b, q(benchName, mdns.TypeA))
	local := netip.MustParseAddr("127.0.0.1")
	buf := make([]byte, 0, maxUDPPayload)
	b.Run("built", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if ans, _ := s.respond(pkt, Authoritative, local, buf); len(ans) == 0 {
				b.Fatal("no answer")
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		c := newAnswerCache()
		snap := s.recs.load()
		c.answer(pkt, snap, nil)
		ans, _ := s.respond(pkt, Authoritative, local, nil)
		c.add(pkt, ans)
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := c.answer(pkt, snap, buf); !ok {
				b.Fatal("no cached answer")
			}
		}
	})
}
