package dns

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// udpServer serves one UDP socket. miekg/dns's Server starts a goroutine
// per datagram; answering from memory takes a few microseconds, so here
// a few reader goroutines answer inline and only forwarded queries, which
// wait on an upstream, get a goroutine of their own.
type udpServer struct {
	s     *Server
	conn  *net.UDPConn
	mode  Mode
	local netip.Addr
	wg    sync.WaitGroup
}

func (s *Server) startUDP(conn *net.UDPConn, mode Mode) *udpServer {
	u := &udpServer{s: s, conn: conn, mode: mode, local: conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()}
	for range max(2, runtime.GOMAXPROCS(0)) {
		u.wg.Add(1)
		go u.read()
	}
	return u
}

func (u *udpServer) close() error {
	err := u.conn.Close()
	u.wg.Wait()
	return err
}

// batchSize is how many datagrams one recvmmsg/sendmmsg call moves. With
// several queries in flight this saves most of the per-packet syscalls.
const batchSize = 16

// batchConn is what ipv4.PacketConn and ipv6.PacketConn share.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

func (u *udpServer) read() {
	defer u.wg.Done()
	var bc batchConn = ipv4.NewPacketConn(u.conn)
	if u.local.Is6() {
		bc = ipv6.NewPacketConn(u.conn)
	}
	in := make([]ipv4.Message, batchSize)
	out := make([]ipv4.Message, batchSize)
	bufs := make([][]byte, batchSize)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, readBufferSize)}
		out[i].Buffers = [][]byte{nil}
		bufs[i] = make([]byte, 0, maxUDPPayload)
	}
	for {
		n, err := bc.ReadBatch(in, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Errors such as ECONNREFUSED echoes or ENOBUFS concern one
			// datagram, not the socket: keep serving, without spinning.
			u.s.log.Debug("DNS udp read", "addr", u.local.String(), "err", err)
			time.Sleep(time.Millisecond)
			continue
		}
		k := 0
		for i := range n {
			from, ok := in[i].Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			ans, fwd := u.s.respond(in[i].Buffers[0][:in[i].N], u.mode, u.local, bufs[i][:0])
			switch {
			case fwd != nil:
				u.forward(fwd, from.AddrPort())
			case ans != nil:
				out[k].Buffers[0] = ans
				out[k].Addr = from
				k++
			}
		}
		for off := 0; off < k; {
			m, err := bc.WriteBatch(out[off:k], 0)
			if err != nil {
				// Skip the datagram the kernel refused and send the rest.
				m = 1
			}
			off += m
		}
	}
}

// forward answers req from an upstream in its own goroutine; or at once
// REFUSED for a client outside the VM subnet and loopback, or SERVFAIL
// when too many forwards are in flight.
func (u *udpServer) forward(req *mdns.Msg, to netip.AddrPort) {
	var refuse int
	switch {
	case !u.s.mayForward(to.Addr()):
		refuse = mdns.RcodeRefused
	case !u.s.acquireForward():
		refuse = mdns.RcodeServerFailure
	}
	if refuse != 0 {
		resp := reply(req, refuse)
		resp.Truncate(udpLimit(req))
		if b, err := resp.Pack(); err == nil {
			u.conn.WriteToUDPAddrPort(b, to)
		}
		return
	}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		defer u.s.releaseForward()
		resp := u.s.forward(req)
		resp.Truncate(udpLimit(req))
		if b, err := resp.Pack(); err == nil {
			u.conn.WriteToUDPAddrPort(b, to)
		}
	}()
}

// respond answers one raw UDP query into buf. It returns nil when nothing
// must be sent (responses, runt packets) and the parsed request when it
// must be forwarded. It never panics on any input.
func (s *Server) respond(pkt []byte, mode Mode, local netip.Addr, buf []byte) (ans []byte, fwd *mdns.Msg) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("DNS handler panicked", "panic", v)
			ans, fwd = nil, nil
		}
	}()
	if len(pkt) < 12 || pkt[2]&0x80 != 0 {
		// Too short for a header, or a response: answering either could
		// be used for reflection or a loop between servers.
		return nil, nil
	}
	req := new(mdns.Msg)
	if err := req.Unpack(pkt); err != nil {
		return formErr(pkt), nil
	}
	resp, forward := s.answer(req, mode, local)
	if forward {
		return nil, req
	}
	resp.Truncate(udpLimit(req))
	b, err := resp.PackBuffer(buf)
	if err != nil {
		s.log.Debug("DNS packing answer", "err", err)
		return formErr(pkt), nil
	}
	return b, nil
}

// formErr is the answer to a query that does not parse: its header with
// QR set, the opcode kept, RCODE FORMERR and no records.
func formErr(pkt []byte) []byte {
	b := make([]byte, 12)
	copy(b, pkt[:2])
	b[2] = 0x80 | pkt[2]&0x78 // QR, opcode
	b[3] = mdns.RcodeFormatError
	return b
}
