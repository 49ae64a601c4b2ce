package dns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"

	mdns "github.com/miekg/dns"
)

// Resolver configuration files read by HostUpstreams.
const (
	ResolvConf         = "/etc/resolv.conf"
	ResolvedResolvConf = "/run/systemd/resolve/resolv.conf"
)

// forward sends req to the upstreams in order and returns the first answer,
// over UDP and again over TCP when the UDP answer is truncated. It answers
// SERVFAIL when no upstream answers.
// The caller holds a slot of fwdSem.
func (s *Server) forward(req *mdns.Msg) *mdns.Msg {
	q := req.Copy()
	q.Id = mdns.Id()
	q.RecursionDesired = true
	// Send a fresh OPT: the client's options (cookies, padding) are
	// between it and us, not for the upstream.
	var do bool
	if opt := q.IsEdns0(); opt != nil {
		do = opt.Do()
	}
	q.Extra = slices.DeleteFunc(q.Extra, func(rr mdns.RR) bool { return rr.Header().Rrtype == mdns.TypeOPT })
	q.SetEdns0(maxUDPPayload, do)

	var errs []error
	for _, up := range *s.upstreams.Load() {
		if s.ownAddr(up) {
			continue
		}
		r, err := s.exchange(q, up)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return s.relay(req, r)
	}
	if len(errs) > 0 {
		s.log.Debug("DNS forward failed", "name", req.Question[0].Name, "err", errors.Join(errs...))
	}
	return reply(req, mdns.RcodeServerFailure)
}

func (s *Server) exchange(q *mdns.Msg, up string) (*mdns.Msg, error) {
	ctx, cancel := context.WithTimeout(s.ctx, 2*s.cfg.ForwardTimeout)
	defer cancel()
	r, _, err := s.udpClient.ExchangeContext(ctx, q, up)
	if err != nil {
		return nil, fmt.Errorf("forwarding to %s over udp: %w", up, err)
	}
	if r.Truncated {
		rt, _, err := s.tcpClient.ExchangeContext(ctx, q, up)
		if err != nil {
			s.log.Debug("DNS forward over tcp failed, relaying truncated answer", "upstream", up, "err", err)
			return r, nil
		}
		r = rt
	}
	return r, nil
}

// relay turns the upstream answer r into the answer to the client's req.
func (s *Server) relay(req, r *mdns.Msg) *mdns.Msg {
	if len(r.Question) != 1 || !equalQuestion(r.Question[0], req.Question[0]) {
		return reply(req, mdns.RcodeServerFailure)
	}
	r.Id = req.Id
	r.Question = req.Question
	r.Extra = slices.DeleteFunc(r.Extra, func(rr mdns.RR) bool { return rr.Header().Rrtype == mdns.TypeOPT })
	if opt := req.IsEdns0(); opt != nil {
		r.SetEdns0(maxUDPPayload, opt.Do())
	} else if r.Rcode > 0xF {
		return reply(req, mdns.RcodeServerFailure)
	}
	r.RecursionAvailable = true
	return r
}

// mayForward reports whether a client may use the server as a recursive
// resolver: guests (the VM subnet) and the host itself (loopback). The
// bridge address is reachable from other networks too, and an open
// resolver would serve anyone there.
func (s *Server) mayForward(client netip.Addr) bool {
	client = client.Unmap()
	return client.IsLoopback() || s.cfg.Subnet.Contains(client)
}

func equalQuestion(a, b mdns.Question) bool {
	return a.Qtype == b.Qtype && a.Qclass == b.Qclass && mdns.CanonicalName(a.Name) == mdns.CanonicalName(b.Name)
}

// HostUpstreams reads the host's upstream resolvers: the nameservers of
// /etc/resolv.conf, or of /run/systemd/resolve/resolv.conf when the former
// lists only systemd-resolved's stub (127.0.0.53 or 127.0.0.54).
func HostUpstreams() ([]string, error) { return upstreamsFrom(os.ReadFile) }

func upstreamsFrom(readFile func(string) ([]byte, error)) ([]string, error) {
	data, err := readFile(ResolvConf)
	if err != nil {
		return nil, fmt.Errorf("reading host resolvers: %w", err)
	}
	ups, err := ParseResolvConf(data)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", ResolvConf, err)
	}
	if len(ups) > 0 && !onlyResolvedStub(ups) {
		return ups, nil
	}
	data, err = readFile(ResolvedResolvConf)
	if err != nil {
		if len(ups) > 0 {
			return ups, nil
		}
		return nil, fmt.Errorf("reading host resolvers: %s lists no nameserver and %w", ResolvConf, err)
	}
	real, err := ParseResolvConf(data)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", ResolvedResolvConf, err)
	}
	if len(real) == 0 {
		if len(ups) > 0 {
			return ups, nil
		}
		return nil, fmt.Errorf("reading host resolvers: no nameserver in %s or %s", ResolvConf, ResolvedResolvConf)
	}
	return real, nil
}

// ParseResolvConf returns the nameservers of a resolv.conf as "IP:53".
func ParseResolvConf(data []byte) ([]string, error) {
	cc, err := mdns.ClientConfigFromReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, srv := range cc.Servers {
		ip, err := netip.ParseAddr(srv)
		if err != nil {
			continue
		}
		out = append(out, netip.AddrPortFrom(ip, 53).String())
	}
	return out, nil
}

func onlyResolvedStub(ups []string) bool {
	for _, u := range ups {
		if u != "127.0.0.53:53" && u != "127.0.0.54:53" {
			return false
		}
	}
	return true
}
