package dns

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"

	mdns "github.com/miekg/dns"
)

// TestAnswerCacheAnswersAsRespondDoes: a cached answer, given to the same
// query with another ID, is byte for byte what respond builds for it.
func TestAnswerCacheAnswersAsRespondDoes(t *testing.T) {
	s := newRecordServer(t, "dev")
	local := netip.MustParseAddr("127.0.0.1")
	withEDNS := func(m *mdns.Msg, size uint16, do bool) *mdns.Msg {
		m.SetEdns0(size, do)
		return m
	}
	noRD := func(m *mdns.Msg) *mdns.Msg {
		m.RecursionDesired = false
		return m
	}
	queries := map[string]*mdns.Msg{
		"A":             q("dev.vm.", mdns.TypeA),
		"A as spelled":  q("DeV.Vm.", mdns.TypeA),
		"A without RD":  noRD(q("dev.vm.", mdns.TypeA)),
		"NXDOMAIN":      q("x.vm.", mdns.TypeA),
		"apex SOA":      q("vm.", mdns.TypeSOA),
		"apex NS":       q("vm.", mdns.TypeNS),
		"ANY with EDNS": withEDNS(q("vm.", mdns.TypeANY), 4096, true),
		"small EDNS":    withEDNS(q("vm.", mdns.TypeANY), 512, false),
		"PTR":           q("2.0.16.172.in-addr.arpa.", mdns.TypePTR),
		"refused":       q("example.com.", mdns.TypeA),
		"AXFR refused":  q("vm.", mdns.TypeAXFR),
		"two questions": func() *mdns.Msg {
			m := q("dev.vm.", mdns.TypeA)
			m.Question = append(m.Question, m.Question[0])
			return m
		}(),
		"EDNS version 1": func() *mdns.Msg {
			m := withEDNS(q("dev.vm.", mdns.TypeA), 1232, false)
			m.IsEdns0().SetVersion(1)
			return m
		}(),
	}
	for name, m := range queries {
		for _, mode := range []Mode{Authoritative, Forwarding} {
			t.Run(fmt.Sprintf("%s/%s", name, mode), func(t *testing.T) {
				c := newAnswerCache()
				snap := s.recs.load()
				m.Id = 0x1234
				first := packed(t, m)
				if _, ok := c.answer(first, snap, nil); ok {
					t.Fatal("an empty cache answered")
				}
				ans, fwd := s.respond(first, mode, local, nil)
				if fwd != nil && mode == Forwarding && name == "refused" {
					return // forwarded, which the reader never caches
				}
				if fwd != nil || ans == nil {
					t.Fatalf("respond: answer %x, forward %v", ans, fwd)
				}
				c.add(first, ans)
				m.Id = 0xabcd
				again := packed(t, m)
				got, ok := c.answer(again, snap, make([]byte, 0, maxUDPPayload))
				if !ok {
					t.Fatal("the cache did not answer a query it holds")
				}
				want, _ := s.respond(again, mode, local, nil)
				if !bytes.Equal(got, want) {
					t.Errorf("cached answer\n%x\nwant respond's\n%x", got, want)
				}
			})
		}
	}
}

// TestAnswerCacheHoldsOneSnapshot: after a record change the cache
// answers nothing it held, so the next query sees the change.
func TestAnswerCacheHoldsOneSnapshot(t *testing.T) {
	s := newRecordServer(t, "dev")
	local := netip.MustParseAddr("127.0.0.1")
	c := newAnswerCache()
	pkt := packed(t, q("dev.vm.", mdns.TypeA))
	c.answer(pkt, s.recs.load(), nil)
	ans, _ := s.respond(pkt, Authoritative, local, nil)
	c.add(pkt, ans)
	if _, ok := c.answer(pkt, s.recs.load(), nil); !ok {
		t.Fatal("the cache did not answer a query it holds")
	}
	if err := s.Set("dev", netip.MustParseAddr("172.16.0.3")); err != nil {
		t.Fatal(err)
	}
	if got, ok := c.answer(pkt, s.recs.load(), nil); ok {
		t.Fatalf("after Set the cache answered %x", got)
	}
}

// TestAnswerCacheIsBounded: many different queries never hold more than
// answerCacheEntries answers, and overlong queries are not cached.
func TestAnswerCacheIsBounded(t *testing.T) {
	c := newAnswerCache()
	c.answer(make([]byte, 12), nil, nil)
	ans := make([]byte, 40)
	for i := range 3 * answerCacheEntries {
		pkt := packed(t, q(fmt.Sprintf("n%d.vm.", i), mdns.TypeA))
		c.add(pkt, ans)
		if len(c.answers) > answerCacheEntries {
			t.Fatalf("after %d queries the cache holds %d answers", i+1, len(c.answers))
		}
	}
	long := make([]byte, answerCacheMaxQuery+1)
	c.add(long, ans)
	if _, ok := c.answer(long, nil, nil); ok {
		t.Error("an overlong query was cached")
	}
}
