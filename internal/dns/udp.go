package dns

import (
	"errors"
	"net/netip"
	"runtime"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
)

// udpServer serves one UDP socket with one reader goroutine. The reader
// sleeps in recvmmsg on a blocking socket (see udpSocket), answers every
// datagram of the batch from memory, each with its own sendto as soon as
// it is packed, and goes back to sleep in the kernel. Only forwarded
// queries, which wait on an upstream, get a goroutine of their own.
//
// Answers go out one by one rather than in one sendmmsg at the end of the
// batch, so that a client with several queries in flight sees a stream
// rather than bursts. dnsperf, whose sender waits for its receiver to make
// room, stalls for 100 ms whenever it reads a whole window of answers at
// once and then loses a race between its two threads.
type udpServer struct {
	s     *Server
	sock  *udpSocket
	mode  Mode
	local netip.Addr
	wg    sync.WaitGroup
}

func (s *Server) startUDP(sock *udpSocket, mode Mode) *udpServer {
	u := &udpServer{s: s, sock: sock, mode: mode, local: sock.local.Addr()}
	u.wg.Add(1)
	go u.read()
	return u
}

// close stops the reader, waits for it and for forwards in flight, and
// closes the socket.
func (u *udpServer) close() error {
	u.sock.shutdown()
	u.wg.Wait()
	return u.sock.close()
}

const (
	// batchSize is how many datagrams one recvmmsg call moves. With
	// several queries in flight this saves most of the reads.
	batchSize = 16
	// yieldInterval is how often a busy reader passes through the Go
	// scheduler. A goroutine that only ever leaves and re-enters system
	// calls keeps its scheduling tick; after 10 ms on one tick the
	// runtime's monitor thread takes its P away, hands it to another
	// thread, and goes back to waking every 20 µs, which under load cost
	// thousands of context switches a second. Yielding more often than
	// that keeps the tick moving and the monitor asleep.
	yieldInterval = 2 * time.Millisecond
)

func (u *udpServer) read() {
	defer u.wg.Done()
	b := newBatch(batchSize)
	buf := make([]byte, 0, maxUDPPayload)
	lastYield := time.Now()
	for {
		// Here the previous batch is answered: yielding costs no query
		// any time.
		if now := time.Now(); now.Sub(lastYield) >= yieldInterval {
			runtime.Gosched()
			lastYield = now
		}
		n, err := u.sock.read(b)
		if err != nil {
			if errors.Is(err, errClosed) {
				return
			}
			// Errors such as ECONNREFUSED echoes or ENOBUFS concern one
			// datagram, not the socket: keep serving, without spinning.
			u.s.log.Debug("DNS udp read", "addr", u.local.String(), "err", err)
			time.Sleep(time.Millisecond)
			continue
		}
		for i := range n {
			ans, fwd := u.s.respond(b.datagram(i), u.mode, u.local, buf[:0])
			switch {
			case fwd != nil:
				u.forward(fwd, b.sender(i))
			case ans != nil:
				// A refused send (a full socket buffer, a sender gone) is
				// the client's to retry, as a lost datagram is.
				_ = u.sock.reply(b, i, ans)
			}
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
			u.sock.writeTo(b, to)
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
			u.sock.writeTo(b, to)
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
