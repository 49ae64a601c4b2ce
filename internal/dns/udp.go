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
// takes the queued queries in one recvmmsg, answers them from memory (a
// query asked before from answerCache) in one sendmmsg, and waits for
// more in poll(2) on its own thread (see udpSocket). Only forwarded
// queries, which wait on an upstream, get a goroutine of their own.
type udpServer struct {
	s     *Server
	sock  *udpSocket
	mode  Mode
	local netip.Addr
	cache *answerCache // the reader's own
	wg    sync.WaitGroup
}

func (s *Server) startUDP(sock *udpSocket, mode Mode) *udpServer {
	u := &udpServer{s: s, sock: sock, mode: mode, local: sock.local.Addr(), cache: newAnswerCache()}
	u.wg.Add(1)
	go u.serve()
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
	// batchSize is how many datagrams one recvmmsg or sendmmsg moves.
	batchSize = 16
	// idleWait bounds the reader's wait in poll(2) and yieldInterval the
	// time between its passes through the scheduler: a busy reader holds
	// its P for at most that long. Both stay under the 10 ms after which
	// the runtime preempts a goroutine.
	idleWait      = 5 * time.Millisecond
	yieldInterval = 5 * time.Millisecond
)

func (u *udpServer) serve() {
	defer u.wg.Done()
	b := newBatch(batchSize)
	bufs := make([][]byte, batchSize)
	outs := make([][]byte, batchSize)
	for i := range bufs {
		bufs[i] = make([]byte, 0, maxUDPPayload)
	}
	lastYield := time.Now()
	drained := true // the last read took every queued query
	for {
		// The last batch is answered: yielding here delays no query.
		if now := time.Now(); now.Sub(lastYield) >= yieldInterval {
			runtime.Gosched()
			lastYield = now
		}
		var n int
		var err error
		if drained {
			ready, interrupted := u.sock.wait(idleWait)
			if interrupted {
				// A preemption signal (say the collector stopping the
				// world): let the scheduler have its way.
				runtime.Gosched()
				lastYield = time.Now()
			}
			if ready {
				n, err = u.sock.tryRead(b)
			} else {
				n, err = u.sock.read(b)
			}
		} else {
			n, err = u.sock.tryRead(b)
		}
		if err != nil {
			if errors.Is(err, errClosed) {
				return
			}
			// Errors such as ECONNREFUSED echoes or ENOBUFS concern one
			// datagram, not the socket: keep serving, without spinning.
			u.s.log.Debug("DNS udp read", "addr", u.local.String(), "err", err)
			time.Sleep(time.Millisecond)
			drained = true
			continue
		}
		drained = n < batchSize
		u.answer(b, n, bufs, outs)
	}
}

// answer answers the n datagrams of b, from the cache when it can,
// forwarding what must be forwarded.
func (u *udpServer) answer(b *batch, n int, bufs, outs [][]byte) {
	snap := u.s.recs.load()
	for i := range n {
		pkt := b.datagram(i)
		if ans, ok := u.cache.answer(pkt, snap, bufs[i]); ok {
			outs[i] = ans
			continue
		}
		ans, fwd := u.s.respond(pkt, u.mode, u.local, bufs[i][:0])
		outs[i] = ans
		if fwd != nil {
			u.forward(fwd, b.sender(i))
		} else if ans != nil {
			u.cache.add(pkt, ans)
		}
	}
	u.sock.reply(b, outs[:n])
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
