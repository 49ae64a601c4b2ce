package dns

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// udpSocket is a UDP socket in blocking mode, outside Go's network poller.
// Its one reader sleeps in recvmmsg and the kernel wakes that thread when
// a query arrives, as it wakes a C server sleeping in poll. Through the
// poller every query took an epoll wake-up, a pass through the scheduler
// and often a futex wake of another thread: under dnsperf bangerd made
// five times dnsmasq's context switches per query and used twice its CPU
// (see docs/dns.md). A blocking read holds its P in a system call; the
// reader yields now and then so that the runtime does not take it away
// (yieldInterval).
type udpSocket struct {
	fd      int
	local   netip.AddrPort
	closing atomic.Bool
}

// listenUDP binds a UDP socket on ap (port 0 picks a free one).
func listenUDP(ap netip.AddrPort) (*udpSocket, error) {
	family := unix.AF_INET
	if ap.Addr().Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("creating udp socket: %w", err)
	}
	if err := unix.Bind(fd, sockaddrOf(ap)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("binding udp %s: %w", ap, err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("reading the bound udp address: %w", err)
	}
	return &udpSocket{fd: fd, local: addrPortOf(sa)}, nil
}

// shutdown wakes the reader blocked in recvmmsg; it then sees closing set
// and returns. Writes after shutdown fail. The caller closes the socket
// once the reader and writers are gone.
func (c *udpSocket) shutdown() {
	c.closing.Store(true)
	// On an unconnected UDP socket shutdown reports ENOTCONN but still
	// marks the socket shut and wakes its readers.
	unix.Shutdown(c.fd, unix.SHUT_RDWR)
}

func (c *udpSocket) close() error {
	if err := unix.Close(c.fd); err != nil {
		return fmt.Errorf("closing udp socket: %w", err)
	}
	return nil
}

// batch holds the buffers of one recvmmsg call: size datagrams of up to
// readBufferSize bytes, with their senders.
type batch struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // large enough for either family
	bufs  [][]byte
}

func newBatch(size int) *batch {
	b := &batch{
		hdrs:  make([]unix.Mmsghdr, size),
		iovs:  make([]unix.Iovec, size),
		names: make([]unix.RawSockaddrInet6, size),
		bufs:  make([][]byte, size),
	}
	for i := range size {
		b.bufs[i] = make([]byte, readBufferSize)
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(readBufferSize)
		b.hdrs[i].Hdr.Iov = &b.iovs[i]
		b.hdrs[i].Hdr.SetIovlen(1)
		b.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
	}
	return b
}

// errClosed is returned by read once the socket is shut down.
var errClosed = errors.New("udp socket closed")

// read blocks until at least one datagram arrives and returns how many
// were read into b (more that were already queued come along, up to the
// batch size). Datagrams longer than readBufferSize are cut.
func (c *udpSocket) read(b *batch) (int, error) {
	for i := range b.hdrs {
		b.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		b.hdrs[i].Hdr.Flags = 0
		b.hdrs[i].Len = 0
	}
	for {
		if c.closing.Load() {
			return 0, errClosed
		}
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(c.fd),
			uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(len(b.hdrs)), unix.MSG_WAITFORONE, 0, 0)
		switch {
		case errno == unix.EINTR:
			continue
		case errno != 0:
			return 0, errno
		case c.closing.Load():
			// A shut-down socket reads as empty datagrams.
			return 0, errClosed
		}
		return int(n), nil
	}
}

// datagram returns the i-th datagram of the last read.
func (b *batch) datagram(i int) []byte { return b.bufs[i][:b.hdrs[i].Len] }

// reply sends p to the sender of the i-th datagram of the last read.
func (c *udpSocket) reply(b *batch, i int, p []byte) error {
	if len(p) == 0 {
		return nil
	}
	_, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(c.fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
		0, uintptr(unsafe.Pointer(&b.names[i])), uintptr(b.hdrs[i].Hdr.Namelen))
	if errno != 0 {
		return errno
	}
	return nil
}

// sender returns the address the i-th datagram came from.
func (b *batch) sender(i int) netip.AddrPort {
	raw := &b.names[i]
	port := func(p uint16) uint16 {
		// Ports in sockaddrs are in network byte order.
		bs := (*[2]byte)(unsafe.Pointer(&p))
		return uint16(bs[0])<<8 | uint16(bs[1])
	}
	switch raw.Family {
	case unix.AF_INET:
		v4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(raw))
		return netip.AddrPortFrom(netip.AddrFrom4(v4.Addr), port(v4.Port))
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(raw.Addr).Unmap(), port(raw.Port))
	}
	return netip.AddrPort{}
}

// writeTo sends p to to, for answers sent from outside the reader.
func (c *udpSocket) writeTo(p []byte, to netip.AddrPort) error {
	return unix.Sendto(c.fd, p, 0, sockaddrOf(to))
}

func sockaddrOf(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

func addrPortOf(sa unix.Sockaddr) netip.AddrPort {
	switch v := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(v.Addr), uint16(v.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(v.Addr).Unmap(), uint16(v.Port))
	}
	return netip.AddrPort{}
}
