package dns

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// listenTestSocket binds a udpSocket on addr and closes it when the test
// ends; it skips when the address family is not available.
func listenTestSocket(t *testing.T, addr string) *udpSocket {
	t.Helper()
	c, err := listenUDP(netip.MustParseAddrPort(addr))
	if err != nil {
		if netip.MustParseAddrPort(addr).Addr().Is6() {
			t.Skipf("no IPv6 loopback here: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.shutdown()
		c.close()
	})
	return c
}

func dialTestSocket(t *testing.T, c *udpSocket) *net.UDPConn {
	t.Helper()
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(c.local))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn
}

// TestUDPSocketReadReply reads queued datagrams in one batch, names their
// sender, cuts what is longer than readBufferSize and answers the sender.
func TestUDPSocketReadReply(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(addr, func(t *testing.T) {
			c := listenTestSocket(t, addr)
			if c.local.Port() == 0 {
				t.Fatalf("bound address %v has no port", c.local)
			}
			conn := dialTestSocket(t, c)
			big := bytes.Repeat([]byte{'x'}, readBufferSize+100)
			for _, p := range [][]byte{[]byte("one"), []byte("two"), big} {
				if _, err := conn.Write(p); err != nil {
					t.Fatal(err)
				}
			}
			// Loopback delivers during the send, so all three are queued.
			b := newBatch(batchSize)
			if ready, _ := c.wait(time.Second); !ready {
				t.Fatal("wait: nothing queued")
			}
			n, err := c.tryRead(b)
			if err != nil {
				t.Fatal(err)
			}
			if n != 3 {
				t.Fatalf("read %d datagrams, want the 3 queued", n)
			}
			if got := string(b.datagram(0)) + " " + string(b.datagram(1)); got != "one two" {
				t.Errorf("datagrams %q, want \"one two\"", got)
			}
			if got := len(b.datagram(2)); got != readBufferSize {
				t.Errorf("oversized datagram read as %d bytes, want it cut to %d", got, readBufferSize)
			}
			from := conn.LocalAddr().(*net.UDPAddr).AddrPort()
			from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			for i := range n {
				if got := b.sender(i); got != from {
					t.Errorf("sender of datagram %d = %v, want %v", i, got, from)
				}
			}
			c.reply(b, [][]byte{nil, []byte("answer"), nil})
			if err := c.writeTo([]byte("later"), from); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 100)
			for _, want := range []string{"answer", "later"} {
				k, err := conn.Read(buf)
				if err != nil {
					t.Fatal(err)
				}
				if string(buf[:k]) != want {
					t.Errorf("client read %q, want %q", buf[:k], want)
				}
			}
		})
	}
}

// TestUDPSocketReadWaits: with nothing queued tryRead returns at once,
// wait gives up after its bound, and read waits until a datagram arrives.
func TestUDPSocketReadWaits(t *testing.T) {
	c := listenTestSocket(t, "127.0.0.1:0")
	b := newBatch(batchSize)
	if n, err := c.tryRead(b); n != 0 || err != nil {
		t.Fatalf("tryRead on an empty socket: %d, %v", n, err)
	}
	// A signal (the Go runtime's preemption) may cut a wait short; that
	// one says so and is tried again.
	ready, interrupted := c.wait(time.Millisecond)
	for i := 0; interrupted && i < 100; i++ {
		ready, interrupted = c.wait(time.Millisecond)
	}
	if ready || interrupted {
		t.Fatalf("wait on an empty socket: ready %v, interrupted %v", ready, interrupted)
	}
	conn := dialTestSocket(t, c)
	go func() {
		time.Sleep(20 * time.Millisecond)
		conn.Write([]byte("late"))
	}()
	n, err := c.read(b)
	if err != nil || n != 1 || string(b.datagram(0)) != "late" {
		t.Fatalf("read: %d datagrams, %v", n, err)
	}
}

// TestUDPSocketShutdownWakesReader: a reader waiting in the bounded raw
// poll(2) or in the unbounded one returns errClosed once the socket is shut down, so Close
// never hangs on an idle listener.
func TestUDPSocketShutdownWakesReader(t *testing.T) {
	for _, how := range []string{"poll", "blocking poll"} {
		t.Run(how, func(t *testing.T) {
			c, err := listenUDP(netip.MustParseAddrPort("127.0.0.1:0"))
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				b := newBatch(1)
				if how == "poll" {
					// As the reader does; a preemption signal may end a
					// wait early.
					for {
						// Long enough to outlast the test if shutdown
						// did not end it.
						if ready, _ := c.wait(time.Minute); !ready {
							done <- errors.New("wait timed out")
							return
						}
						if _, err := c.tryRead(b); err != nil {
							done <- err
							return
						}
					}
				}
				_, err := c.read(b)
				done <- err
			}()
			// Give the reader time to block; the test holds either way.
			time.Sleep(20 * time.Millisecond)
			c.shutdown()
			select {
			case err := <-done:
				if !errors.Is(err, errClosed) {
					t.Errorf("read after shutdown: %v, want errClosed", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("reader still blocked after shutdown")
			}
			if err := c.close(); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestListenIPv6 serves a query on the IPv6 loopback, UDP and TCP.
func TestListenIPv6(t *testing.T) {
	s := newRecordServer(t, "dev")
	a, err := s.Listen("[::1]:0", Authoritative)
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	for _, network := range []string{"udp", "tcp"} {
		c := &mdns.Client{Net: network, Timeout: 5 * time.Second}
		r, _, err := c.Exchange(q("dev.vm.", mdns.TypeA), a.String())
		if err != nil {
			t.Fatalf("%s query on %s: %v", network, a, err)
		}
		if len(r.Answer) != 1 || r.Answer[0].(*mdns.A).A.String() != "172.16.0.2" {
			t.Errorf("%s answer %v", network, r)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("closing: %v", err)
	}
}

// TestReaderYields: with one P, a reader busy with queries or waiting for
// the next one in its raw poll still lets other goroutines and the
// garbage collector run.
func TestReaderYields(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	_, addr := newTestServer(t, Config{}, Authoritative)
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	query := packed(t, q("dev.vm.", mdns.TypeA))
	buf := make([]byte, 512)
	for i := range 200 {
		if _, err := conn.Write(query); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Read(buf); err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
		if i%50 == 0 {
			// The reader is now in its raw wait, holding the only P.
			runtime.GC()
			done := make(chan struct{})
			go func() { close(done) }()
			<-done
		}
	}
}
