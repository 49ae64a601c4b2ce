package dns

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
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
			n, err := c.read(b)
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
			if err := c.reply(b, 1, []byte("answer")); err != nil {
				t.Fatal(err)
			}
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

// TestUDPSocketShutdownWakesReader: a reader asleep in recvmmsg returns
// errClosed once the socket is shut down, so Close never hangs on an idle
// listener.
func TestUDPSocketShutdownWakesReader(t *testing.T) {
	c, err := listenUDP(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.read(newBatch(1))
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
	if _, err := c.read(newBatch(1)); !errors.Is(err, errClosed) {
		t.Errorf("read on a closed socket: %v, want errClosed", err)
	}
}

// TestListenIPv6 serves a query on the IPv6 loopback, UDP and TCP.
func TestListenIPv6(t *testing.T) {
	s, err := New(Config{Subnet: testSubnet}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Set("dev", netip.MustParseAddr("172.16.0.2")); err != nil {
		t.Fatal(err)
	}
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
