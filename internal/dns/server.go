package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
	"golang.org/x/net/netutil"
)

// Defaults for Config fields left zero.
const (
	DefaultZone           = "vm."
	DefaultListenAddr     = "127.0.0.1:42069"
	DefaultTTL            = 5 * time.Second
	MaxTTL                = 5 * time.Second
	DefaultForwardTimeout = 2 * time.Second
	defaultMaxForwards    = 256
	defaultMaxTCPConns    = 256
	// maxUDPPayload is the EDNS0 UDP payload size the server advertises and
	// the most it sends over UDP (the DNS flag day 2020 value).
	maxUDPPayload = 1232
	// readBufferSize bounds the size of a UDP query read; larger datagrams
	// are cut and answered with FORMERR.
	readBufferSize = 4096
)

// Mode says what a listener answers.
type Mode int

const (
	// Authoritative serves only the zone and its reverse zones and answers
	// REFUSED for every other name. Use it on the host's loopback listener.
	Authoritative Mode = iota
	// Forwarding serves the zone like Authoritative and forwards every
	// other name to the upstream resolvers. Use it on the bridge gateway,
	// where guests send all their queries.
	Forwarding
)

func (m Mode) String() string {
	if m == Forwarding {
		return "forwarding"
	}
	return "authoritative"
}

// Config configures a Server. Zero fields take the defaults above.
type Config struct {
	// Zone is the zone served, "vm." by default.
	Zone string
	// Aliases are further zones answered with Zone's records: with Zone
	// "alice.vm." and alias "vm.", "dev.vm." answers as "dev.alice.vm."
	// does (a user's guests call each other NAME.vm). A name inside Zone
	// is always Zone's, even where an alias is a suffix of Zone.
	Aliases []string
	// Subnet is the VM subnet; PTR records are served for addresses in it.
	// The zero Prefix serves no reverse zone.
	Subnet netip.Prefix
	// TTL of every answer, at most MaxTTL (5 s).
	TTL time.Duration
	// Upstreams are the resolvers ("IP" or "IP:port") that Forwarding
	// listeners send other names to; see HostUpstreams. SetUpstreams
	// replaces them at run time.
	Upstreams []string
	// AllowedAddrs are the non-loopback addresses Listen may bind (the
	// bridge gateway). Loopback addresses are always allowed.
	AllowedAddrs []netip.Addr
	// ForwardTimeout bounds each attempt to reach an upstream.
	ForwardTimeout time.Duration
	// MaxForwards bounds concurrently forwarded queries; more are answered
	// SERVFAIL at once.
	MaxForwards int
	// MaxTCPConns bounds open TCP connections per listener.
	MaxTCPConns int
}

// Server is the DNS server. Create it with New, add listeners with Listen,
// feed it records with Replace, Set and Remove, and stop it with Close.
type Server struct {
	cfg      Config
	log      *slog.Logger
	ttl      uint32
	recs     *records
	revZones []string
	zones    []string // the forward zone followed by the reverse zones

	upstreams atomic.Pointer[[]string]
	fwdSem    chan struct{}
	udpClient *mdns.Client
	tcpClient *mdns.Client
	ctx       context.Context
	cancel    context.CancelFunc

	mu        sync.Mutex
	listeners []*listener
	closed    bool
}

type listener struct {
	addr netip.AddrPort
	mode Mode
	udp  *udpServer
	tcp  *mdns.Server
	wg   sync.WaitGroup
}

// New validates cfg and returns a Server with no listeners and no records.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Zone == "" {
		cfg.Zone = DefaultZone
	}
	cfg.Zone = mdns.CanonicalName(cfg.Zone)
	if _, ok := mdns.IsDomainName(cfg.Zone); !ok || cfg.Zone == "." {
		return nil, fmt.Errorf("configuring DNS: invalid zone %q", cfg.Zone)
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.TTL < time.Second || cfg.TTL > MaxTTL {
		return nil, fmt.Errorf("configuring DNS: TTL %v out of range (1s to %v)", cfg.TTL, MaxTTL)
	}
	if cfg.ForwardTimeout <= 0 {
		cfg.ForwardTimeout = DefaultForwardTimeout
	}
	if cfg.MaxForwards <= 0 {
		cfg.MaxForwards = defaultMaxForwards
	}
	if cfg.MaxTCPConns <= 0 {
		cfg.MaxTCPConns = defaultMaxTCPConns
	}
	for i, a := range cfg.Aliases {
		cfg.Aliases[i] = mdns.CanonicalName(a)
		if _, ok := mdns.IsDomainName(cfg.Aliases[i]); !ok || cfg.Aliases[i] == "." || cfg.Aliases[i] == cfg.Zone {
			return nil, fmt.Errorf("configuring DNS: invalid alias zone %q", a)
		}
	}
	rev, err := reverseZones(cfg.Subnet)
	if err != nil {
		return nil, fmt.Errorf("configuring DNS: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:       cfg,
		log:       log,
		ttl:       uint32(cfg.TTL / time.Second),
		recs:      newRecords(cfg.Zone, uint32(time.Now().Unix())),
		revZones:  rev,
		zones:     append(append([]string{cfg.Zone}, cfg.Aliases...), rev...),
		fwdSem:    make(chan struct{}, cfg.MaxForwards),
		udpClient: &mdns.Client{Net: "udp", Timeout: cfg.ForwardTimeout, UDPSize: maxUDPPayload},
		tcpClient: &mdns.Client{Net: "tcp", Timeout: cfg.ForwardTimeout},
		ctx:       ctx,
		cancel:    cancel,
	}
	if err := s.SetUpstreams(cfg.Upstreams); err != nil {
		cancel()
		return nil, err
	}
	return s, nil
}

// Zone returns the canonical zone name ("vm.").
func (s *Server) Zone() string { return s.cfg.Zone }

// ReverseZones returns the in-addr.arpa zones served for the subnet.
func (s *Server) ReverseZones() []string { return slices.Clone(s.revZones) }

// Set registers name (relative to the zone: "dev" serves "dev.vm.") at ip,
// replacing any earlier address. The next query sees it.
func (s *Server) Set(name string, ip netip.Addr) error { return s.recs.set(name, ip) }

// Remove unregisters name and reports whether it was registered.
func (s *Server) Remove(name string) bool { return s.recs.remove(name) }

// Replace atomically replaces every record with recs. When any record is
// invalid nothing changes and the error names each bad record.
func (s *Server) Replace(recs []Record) error { return s.recs.replace(recs) }

// Count returns the number of registered names.
func (s *Server) Count() int { return len(s.recs.load().byName) }

// Lookup returns the address registered for name, for status displays.
func (s *Server) Lookup(name string) (netip.Addr, bool) {
	full, err := s.recs.fqdn(name)
	if err != nil {
		return netip.Addr{}, false
	}
	ip, ok := s.recs.load().byName[full]
	return ip, ok
}

// SetUpstreams replaces the resolvers Forwarding listeners forward to.
// Entries are "IP" (port 53) or "IP:port"; IPv6 with a port is "[IP]:port".
func (s *Server) SetUpstreams(ups []string) error {
	out := make([]string, 0, len(ups))
	for _, u := range ups {
		ap, err := parseUpstream(u)
		if err != nil {
			return fmt.Errorf("configuring DNS upstreams: %w", err)
		}
		out = append(out, ap)
	}
	s.upstreams.Store(&out)
	return nil
}

// Upstreams returns the current upstream resolvers as "IP:port".
func (s *Server) Upstreams() []string { return slices.Clone(*s.upstreams.Load()) }

func parseUpstream(u string) (string, error) {
	if ap, err := netip.ParseAddrPort(u); err == nil {
		return ap.String(), nil
	}
	ip, err := netip.ParseAddr(u)
	if err != nil {
		return "", fmt.Errorf("upstream %q is not an IP address or IP:port", u)
	}
	return netip.AddrPortFrom(ip, 53).String(), nil
}

// Listen binds addr ("IP:port"; port 0 picks a free port) over UDP and TCP
// on the same port and serves it in mode. It refuses addresses that are
// neither loopback nor in Config.AllowedAddrs. It returns the bound address
// once both sockets are serving.
func (s *Server) Listen(addr string, mode Mode) (net.Addr, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("starting DNS listener: address %q is not IP:port: %w", addr, err)
	}
	ip := ap.Addr().Unmap()
	if !ip.IsLoopback() && !slices.Contains(s.cfg.AllowedAddrs, ip) {
		return nil, fmt.Errorf("starting DNS listener on %s: refusing a non-loopback address that is not the bridge gateway (allowed: loopback, %v)", addr, s.cfg.AllowedAddrs)
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("starting DNS listener on %s: server closed", addr)
	}
	us, tl, err := bindPair(netip.AddrPortFrom(ip, ap.Port()))
	if err != nil {
		return nil, fmt.Errorf("starting DNS listener on %s: %w", addr, err)
	}
	bound := net.UDPAddrFromAddrPort(us.local)
	l := &listener{addr: us.local, mode: mode}
	h := s.handler(mode)
	idle := func() time.Duration { return 5 * time.Second }
	l.tcp = &mdns.Server{
		Listener: netutil.LimitListener(tl, s.cfg.MaxTCPConns), Handler: h,
		ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, IdleTimeout: idle, MaxTCPQueries: 1000,
	}
	started := make(chan struct{})
	l.tcp.NotifyStartedFunc = func() { close(started) }
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		if err := l.tcp.ActivateAndServe(); err != nil {
			s.log.Error("DNS listener stopped", "addr", l.addr.String(), "err", err)
		}
	}()
	<-started
	l.udp = s.startUDP(us, mode)
	s.mu.Lock()
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	s.log.Info("DNS listening", "addr", l.addr.String(), "mode", mode.String())
	return bound, nil
}

// bindPair binds UDP and TCP on the same address. With port 0 it retries
// a few times in case the kernel's free UDP port is taken for TCP.
func bindPair(ap netip.AddrPort) (*udpSocket, net.Listener, error) {
	var lastErr error
	for attempt := 0; attempt < 10; attempt++ {
		us, err := listenUDP(ap)
		if err != nil {
			return nil, nil, err
		}
		tl, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(us.local))
		if err == nil {
			return us, tl, nil
		}
		us.close()
		lastErr = fmt.Errorf("binding tcp: %w", err)
		if ap.Port() != 0 {
			break
		}
	}
	return nil, nil, lastErr
}

// Listeners returns the bound listener addresses ("127.0.0.1:42069").
func (s *Server) Listeners() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.listeners))
	for _, l := range s.listeners {
		out = append(out, l.addr.String())
	}
	return out
}

// CloseListener stops the listener bound to addr (as Listeners reports it),
// for instance when the bridge goes away.
func (s *Server) CloseListener(addr string) error {
	s.mu.Lock()
	var l *listener
	for i, c := range s.listeners {
		if c.addr.String() == addr {
			l = c
			s.listeners = slices.Delete(s.listeners, i, i+1)
			break
		}
	}
	s.mu.Unlock()
	if l == nil {
		return fmt.Errorf("stopping DNS listener %s: no such listener", addr)
	}
	return l.shutdown()
}

// Close stops every listener and in-flight forward. It is safe to call
// more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	ls := s.listeners
	s.listeners = nil
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	var errs []error
	for _, l := range ls {
		errs = append(errs, l.shutdown())
	}
	return errors.Join(errs...)
}

func (l *listener) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var errs []error
	if err := l.udp.close(); err != nil {
		errs = append(errs, fmt.Errorf("stopping DNS listener %s over udp: %w", l.addr, err))
	}
	if err := l.tcp.ShutdownContext(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stopping DNS listener %s over tcp: %w", l.addr, err))
	}
	l.wg.Wait()
	return errors.Join(errs...)
}

// ownAddr reports whether ap is one of this server's listeners, so the
// forwarder never sends a query back to itself.
func (s *Server) ownAddr(up string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.listeners {
		if l.addr.String() == up {
			return true
		}
	}
	return false
}

func isUDP(w mdns.ResponseWriter) bool {
	_, ok := w.LocalAddr().(*net.UDPAddr)
	return ok || strings.HasPrefix(w.LocalAddr().Network(), "udp")
}
