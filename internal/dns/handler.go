package dns

import (
	"net/netip"
	"slices"
	"strings"

	mdns "github.com/miekg/dns"
)

// handler returns the miekg handler for a listener in mode.
func (s *Server) handler(mode Mode) mdns.Handler {
	return mdns.HandlerFunc(func(w mdns.ResponseWriter, req *mdns.Msg) {
		s.serve(w, req, mode)
	})
}

// serve answers one query. It never panics: a bug in answering is logged
// and the query is dropped, so one bad packet cannot stop the daemon.
func (s *Server) serve(w mdns.ResponseWriter, req *mdns.Msg, mode Mode) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("DNS handler panicked", "panic", v)
		}
	}()
	udp := w.LocalAddr() != nil && isUDP(w)
	resp, fwd := s.answer(req, mode, localAddr(w.LocalAddr()))
	if fwd {
		switch {
		case !s.mayForward(localAddr(w.RemoteAddr())):
			resp = reply(req, mdns.RcodeRefused)
		case s.acquireForward():
			resp = s.forward(req)
			s.releaseForward()
		default:
			resp = reply(req, mdns.RcodeServerFailure)
		}
	}
	if udp {
		resp.Truncate(udpLimit(req))
	}
	_ = w.WriteMsg(resp)
}

// acquireForward takes a forwarding slot without waiting; releaseForward
// gives it back.
func (s *Server) acquireForward() bool {
	select {
	case s.fwdSem <- struct{}{}:
		return true
	default:
		return false
	}
}

func (s *Server) releaseForward() { <-s.fwdSem }

// udpLimit is the largest UDP response the client accepts.
func udpLimit(req *mdns.Msg) int {
	if opt := req.IsEdns0(); opt != nil {
		return int(max(min(opt.UDPSize(), maxUDPPayload), mdns.MinMsgSize))
	}
	return mdns.MinMsgSize
}

// reply starts a response to req, with an OPT record when req has one.
func reply(req *mdns.Msg, rcode int) *mdns.Msg {
	resp := new(mdns.Msg)
	resp.SetReply(req)
	resp.Rcode = rcode
	if opt := req.IsEdns0(); opt != nil {
		resp.SetEdns0(maxUDPPayload, opt.Do())
	}
	return resp
}

// answer builds the response to req, or reports that it must be forwarded.
// local is the listener's own address, served as the zone's name server.
func (s *Server) answer(req *mdns.Msg, mode Mode, local netip.Addr) (*mdns.Msg, bool) {
	if req.Response {
		return reply(req, mdns.RcodeFormatError), false
	}
	if opt := req.IsEdns0(); opt != nil && opt.Version() != 0 {
		return reply(req, mdns.RcodeBadVers), false
	}
	if req.Opcode != mdns.OpcodeQuery {
		return reply(req, mdns.RcodeNotImplemented), false
	}
	if len(req.Question) != 1 {
		return reply(req, mdns.RcodeFormatError), false
	}
	q := req.Question[0]
	name := mdns.CanonicalName(q.Name)
	zone := zoneOf(name, s.zones)
	if zone == "" {
		if mode == Forwarding && (q.Qclass == mdns.ClassINET || q.Qclass == mdns.ClassANY) {
			return nil, true
		}
		return reply(req, mdns.RcodeRefused), false
	}
	resp := reply(req, mdns.RcodeSuccess)
	resp.RecursionAvailable = mode == Forwarding
	if q.Qclass != mdns.ClassINET && q.Qclass != mdns.ClassANY {
		resp.Rcode = mdns.RcodeRefused
		return resp, false
	}
	if q.Qtype == mdns.TypeAXFR || q.Qtype == mdns.TypeIXFR {
		resp.Rcode = mdns.RcodeRefused
		return resp, false
	}
	resp.Authoritative = true
	snap := s.recs.load()
	rrs, exists := s.lookup(snap, s.unalias(name, zone), s.unalias(zone, zone), local)
	for _, rr := range rrs {
		if q.Qtype == mdns.TypeANY || rr.Header().Rrtype == q.Qtype {
			// Answer with the name as the client spelled it.
			rr.Header().Name = q.Name
			resp.Answer = append(resp.Answer, rr)
		}
	}
	switch {
	case !exists:
		resp.Rcode = mdns.RcodeNameError
		resp.Ns = []mdns.RR{s.soa(zone, snap.serial)}
	case len(resp.Answer) == 0:
		resp.Ns = []mdns.RR{s.soa(zone, snap.serial)}
	case q.Qtype == mdns.TypeNS || q.Qtype == mdns.TypeANY:
		if name == zone && local.IsValid() {
			resp.Extra = append(resp.Extra, addrRR(s.cfg.Zone, local, s.ttl))
		}
	}
	return resp, false
}

// lookup returns the records owned by the canonical name in zone and
// whether the name exists (owns records or has records beneath it).
func (s *Server) lookup(snap *snapshot, name, zone string, local netip.Addr) ([]mdns.RR, bool) {
	if name == zone {
		rrs := []mdns.RR{
			s.soa(zone, snap.serial),
			&mdns.NS{Hdr: s.hdr(zone, mdns.TypeNS), Ns: s.cfg.Zone},
		}
		// The forward apex doubles as the zone's name server, so it owns
		// the address of the listener that was asked.
		if zone == s.cfg.Zone && local.IsValid() {
			rrs = append(rrs, addrRR(zone, local, s.ttl))
		}
		return rrs, true
	}
	if zone == s.cfg.Zone {
		if ip, ok := snap.byName[name]; ok {
			return []mdns.RR{addrRR(name, ip, s.ttl)}, true
		}
		_, ent := snap.ents[name]
		return nil, ent
	}
	if ip, ok := parseReverse(name); ok {
		if !s.cfg.Subnet.Contains(ip) {
			return nil, false
		}
		if target, ok := snap.byAddr[ip]; ok {
			return []mdns.RR{&mdns.PTR{Hdr: s.hdr(name, mdns.TypePTR), Ptr: target}}, true
		}
		return nil, false
	}
	// A partial reverse name ("3.2.1.in-addr.arpa." inside a /16 zone)
	// exists when some registered address lies beneath it.
	for ip := range snap.byAddr {
		if ip.Is4() && s.cfg.Subnet.Contains(ip) {
			if full, err := mdns.ReverseAddr(ip.String()); err == nil && strings.HasSuffix(full, "."+name) {
				return nil, true
			}
		}
	}
	return nil, false
}

func (s *Server) hdr(name string, t uint16) mdns.RR_Header {
	return mdns.RR_Header{Name: name, Rrtype: t, Class: mdns.ClassINET, Ttl: s.ttl}
}

// soa returns the SOA of zone. Its minimum (the negative-caching TTL) is
// the record TTL, so a name that appears is never cached away for long.
func (s *Server) soa(zone string, serial uint32) *mdns.SOA {
	return &mdns.SOA{
		Hdr:     s.hdr(zone, mdns.TypeSOA),
		Ns:      s.cfg.Zone,
		Mbox:    "hostmaster." + s.cfg.Zone,
		Serial:  serial,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  s.ttl,
	}
}

// unalias maps a name inside an alias zone onto the served zone
// ("dev.vm." → "dev.alice.vm."); other names are returned as they are.
func (s *Server) unalias(name, zone string) string {
	if !slices.Contains(s.cfg.Aliases, zone) {
		return name
	}
	return strings.TrimSuffix(name, zone) + s.cfg.Zone
}
