package forward

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// freePort returns a port nothing listens on for proto (racy, as every
// such helper; fine on a test host).
func freePort(t testing.TB, proto Proto) uint16 {
	t.Helper()
	if proto == UDP {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		return uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// tcpServer stands in for a guest service: it reads until EOF, then
// answers "got:" and what it read, then closes. hold makes it wait for
// release before answering.
type tcpServer struct {
	ln      net.Listener
	release chan struct{}
	mu      sync.Mutex
	conns   int
}

func newTCPServer(t testing.TB, hold bool) *tcpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tcpServer{ln: ln, release: make(chan struct{})}
	if !hold {
		close(s.release)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
			go func() {
				defer c.Close()
				data, _ := io.ReadAll(c)
				<-s.release
				c.Write(append([]byte("got:"), data...))
			}()
		}
	}()
	return s
}

func (s *tcpServer) port() uint16 { return uint16(s.ln.Addr().(*net.TCPAddr).Port) }

func startForward(t *testing.T, f *Forwarder, proto Proto, guestPort uint16) Spec {
	t.Helper()
	spec := Spec{HostAddr: loopback, HostPort: freePort(t, proto), GuestPort: guestPort, Proto: proto}
	if err := f.Start(spec); err != nil {
		t.Fatal(err)
	}
	return spec
}

func TestTCPForwardWithHalfClose(t *testing.T) {
	srv := newTCPServer(t, false)
	f := New(loopback, Options{})
	defer f.Close()
	spec := startForward(t, f, TCP, srv.port())
	payload := make([]byte, 4<<20)
	rand.Read(payload)
	c, err := net.Dial("tcp", spec.HostAddrPort().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
	// The server answers only after it sees EOF: the half-close must
	// reach it while our read side stays open.
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append([]byte("got:"), payload...)) {
		t.Errorf("answer of %d bytes, want %d", len(got), len(payload)+4)
	}
}

func TestTCPForwardToAClosedGuestPortResets(t *testing.T) {
	f := New(loopback, Options{})
	defer f.Close()
	spec := startForward(t, f, TCP, freePort(t, TCP))
	// The reset may come before the client's connect returns, or after.
	c, err := net.Dial("tcp", spec.HostAddrPort().String())
	if err == nil {
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("read from a forward to a closed port = %v, want a reset", err)
	}
}

func TestStopClosesListenerAndConnections(t *testing.T) {
	srv := newTCPServer(t, true) // holds every connection open
	f := New(loopback, Options{})
	defer f.Close()
	spec := startForward(t, f, TCP, srv.port())
	c, err := net.Dial("tcp", spec.HostAddrPort().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("x"))
	waitFor(t, func() bool { srv.mu.Lock(); defer srv.mu.Unlock(); return srv.conns == 1 })
	done := make(chan struct{})
	go func() { f.Stop(spec); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not return")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("the connection through the forward is still open after Stop")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Error("the connection through the forward was not closed by Stop")
	}
	if c2, err := net.Dial("tcp", spec.HostAddrPort().String()); err == nil {
		c2.Close()
		t.Error("the host port still accepts after Stop")
	}
	if len(f.Specs()) != 0 {
		t.Errorf("Specs after Stop = %v", f.Specs())
	}
	f.Stop(spec) // stopping again is fine
	// The port is free again: a new forward can take it.
	if err := f.Start(spec); err != nil {
		t.Errorf("restarting the forward: %v", err)
	}
}

func TestPortInUseAndDuplicates(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f := New(loopback, Options{})
	defer f.Close()
	taken := Spec{HostAddr: loopback, HostPort: uint16(ln.Addr().(*net.TCPAddr).Port), GuestPort: 80, Proto: TCP}
	if err := f.Start(taken); err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("port in use: %v", err)
	}
	spec := startForward(t, f, TCP, 80)
	dup := spec
	dup.GuestPort = 81
	if err := f.Start(dup); err == nil || !strings.Contains(err.Error(), "already forwarded") {
		t.Errorf("duplicate: %v", err)
	}
	udp := spec
	udp.Proto = UDP
	if err := f.Start(udp); err != nil {
		t.Errorf("the same port over UDP: %v", err)
	}
	if got := f.Specs(); len(got) != 2 || got[0].Proto != TCP || got[1].Proto != UDP {
		t.Errorf("Specs = %v", got)
	}
	f.Close()
	if err := f.Start(spec); err == nil {
		t.Error("Start after Close succeeded")
	}
}

// udpEcho answers each datagram with "echo:" and the datagram.
func udpEcho(t *testing.T) uint16 {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, maxDatagram)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte("echo:"), buf[:n]...), from)
		}
	}()
	return uint16(pc.LocalAddr().(*net.UDPAddr).Port)
}

func TestUDPForwardSessionsAndIdleTimeout(t *testing.T) {
	f := New(loopback, Options{UDPIdleTimeout: 300 * time.Millisecond})
	defer f.Close()
	spec := startForward(t, f, UDP, udpEcho(t))
	var clients []net.Conn
	for i := range 3 {
		c, err := net.Dial("udp", spec.HostAddrPort().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
		msg := []byte{'a' + byte(i)}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(msg)
		buf := make([]byte, 100)
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "echo:"+string(msg) {
			t.Errorf("client %d got %q, %v", i, buf[:n], err)
		}
	}
	f.mu.Lock()
	u := f.active[spec.key()].udp
	f.mu.Unlock()
	if n := u.sessionCount(); n != 3 {
		t.Errorf("%d sessions, want 3", n)
	}
	waitFor(t, func() bool { return u.sessionCount() == 0 })
	// A client that comes back after its session ended gets a new one.
	clients[0].Write([]byte("again"))
	buf := make([]byte, 100)
	if n, err := clients[0].Read(buf); err != nil || string(buf[:n]) != "echo:again" {
		t.Errorf("after the idle timeout: %q, %v", buf[:n], err)
	}
}

func TestUDPSessionLimit(t *testing.T) {
	f := New(loopback, Options{MaxUDPSessions: 1})
	defer f.Close()
	spec := startForward(t, f, UDP, udpEcho(t))
	a, _ := net.Dial("udp", spec.HostAddrPort().String())
	b, _ := net.Dial("udp", spec.HostAddrPort().String())
	defer a.Close()
	defer b.Close()
	buf := make([]byte, 100)
	a.SetDeadline(time.Now().Add(5 * time.Second))
	a.Write([]byte("a"))
	if _, err := a.Read(buf); err != nil {
		t.Fatal(err)
	}
	b.SetDeadline(time.Now().Add(300 * time.Millisecond))
	b.Write([]byte("b"))
	if n, err := b.Read(buf); err == nil {
		t.Errorf("a second client got %q past the limit of one session", buf[:n])
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
