package forward

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxDatagram is the largest UDP payload.
const maxDatagram = 64 << 10

// udpForward is a UDP forward's state: one connected socket towards the
// guest per client address, so replies find their way back.
type udpForward struct {
	pc       *net.UDPConn
	mu       sync.Mutex
	sessions map[netip.AddrPort]*udpSession
}

type udpSession struct {
	client netip.AddrPort
	conn   *net.UDPConn
	last   atomic.Int64 // unix nanoseconds of the last datagram either way
}

func (f *Forwarder) startUDP(fw *forward) error {
	pc, err := listenConfig().ListenPacket(fw.ctx, "udp", fw.spec.HostAddrPort().String())
	if err != nil {
		return err
	}
	fw.closer = pc
	u := &udpForward{pc: pc.(*net.UDPConn), sessions: map[netip.AddrPort]*udpSession{}}
	fw.udp = u
	fw.wg.Add(1)
	go func() {
		defer fw.wg.Done()
		f.serveUDP(fw, u)
	}()
	return nil
}

// serveUDP passes each client's datagrams to the guest through that
// client's session, opening sessions as clients appear.
func (f *Forwarder) serveUDP(fw *forward, u *udpForward) {
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := u.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if isClosed(err) || fw.ctx.Err() != nil {
				return
			}
			continue
		}
		s := f.udpSession(fw, u, from)
		if s == nil {
			continue
		}
		s.last.Store(time.Now().UnixNano())
		// A guest port with nothing behind it answers with ICMP; the
		// datagram is lost, as it would be without the forward.
		_, _ = s.conn.Write(buf[:n])
	}
}

// udpSession returns from's session, opening it when needed; nil when the
// session limit is reached or the guest cannot be addressed.
func (f *Forwarder) udpSession(fw *forward, u *udpForward, from netip.AddrPort) *udpSession {
	u.mu.Lock()
	defer u.mu.Unlock()
	if s, ok := u.sessions[from]; ok {
		return s
	}
	if len(u.sessions) >= f.opts.MaxUDPSessions {
		f.log.Warn("forward dropped a datagram: too many UDP clients", "forward", fw.spec.String(), "client", from.String())
		return nil
	}
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(fw.target))
	if err != nil {
		f.log.Debug("forward could not reach the guest", "forward", fw.spec.String(), "err", err)
		return nil
	}
	if !fw.track(conn) {
		conn.Close()
		return nil
	}
	s := &udpSession{client: from, conn: conn}
	s.last.Store(time.Now().UnixNano())
	u.sessions[from] = s
	fw.wg.Add(1)
	go func() {
		defer fw.wg.Done()
		f.udpReplies(fw, u, s)
	}()
	return s
}

// udpReplies sends the guest's answers back to the session's client and
// ends the session once it has been idle for UDPIdleTimeout.
func (f *Forwarder) udpReplies(fw *forward, u *udpForward, s *udpSession) {
	defer func() {
		u.mu.Lock()
		delete(u.sessions, s.client)
		u.mu.Unlock()
		fw.untrack(s.conn)
		s.conn.Close()
	}()
	idle := f.opts.UDPIdleTimeout
	buf := make([]byte, maxDatagram)
	for {
		_ = s.conn.SetReadDeadline(time.Unix(0, s.last.Load()).Add(idle))
		n, err := s.conn.Read(buf)
		if err != nil {
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				if time.Since(time.Unix(0, s.last.Load())) >= idle {
					return
				}
			case errors.Is(err, syscall.ECONNREFUSED):
				// The guest's ICMP port unreachable for an earlier datagram.
			default:
				return
			}
			continue
		}
		s.last.Store(time.Now().UnixNano())
		_, _ = u.pc.WriteToUDPAddrPort(buf[:n], s.client)
	}
}

// sessionCount is the number of open UDP sessions, for tests.
func (u *udpForward) sessionCount() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.sessions)
}
