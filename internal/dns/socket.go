package dns

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// udpSocket is a listener's UDP socket, read and written with system calls
// of its own rather than through Go's network poller. Through the poller
// every datagram woke a thread blocked in epoll_wait and went through the
// scheduler, often with a futex wake of another thread: under dnsperf
// bangerd made five times dnsmasq's context switches per query and used
// nearly twice its CPU (see docs/dns.md).
//
// While queries keep coming the reader waits for the next one in poll(2)
// on its own thread, as a C server does: the kernel wakes that thread and
// nothing else. These calls are raw (unix.RawSyscall): the runtime does not
// see them, so it neither hands the reader's P to another thread nor wakes
// its monitor thread (sysmon), which after a thread comes back from a long
// system call polls every 20 µs for a while. A raw call holds its P, so that wait is bounded (idleWait) and a
// preemption signal ends it early (poll returns EINTR and the reader
// yields), which keeps the garbage collector's stop-the-world prompt.
//
// After idleWait without a query the reader parks in the network poller,
// and an idle daemon sleeps. The socket itself is not in the poller, which
// would wake a thread for every datagram the reader takes by itself: it is
// in an epoll set of its own (ep), one-shot and re-armed before each park,
// and ep is in the poller.
type udpSocket struct {
	fd      int
	epfd    int
	ep      *os.File // epfd, for the poller
	epc     syscall.RawConn
	local   netip.AddrPort
	closing atomic.Bool
}

// listenUDP binds a UDP socket on ap (port 0 picks a free one).
func listenUDP(ap netip.AddrPort) (*udpSocket, error) {
	family := unix.AF_INET
	if ap.Addr().Is6() {
		family = unix.AF_INET6
	}
	// Non-blocking, so that a write never waits: every wait is a poll.
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
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
	c := &udpSocket{fd: fd, local: addrPortOf(sa)}
	if err := c.newEpoll(); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("preparing to wait on udp %s: %w", c.local, err)
	}
	return c, nil
}

// newEpoll creates ep, with the socket in it, disarmed until park.
func (c *udpSocket) newEpoll() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("creating epoll set: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLONESHOT, Fd: int32(c.fd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		unix.Close(epfd)
		return fmt.Errorf("adding the socket to the epoll set: %w", err)
	}
	// Non-blocking, so that os.NewFile puts it in the network poller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return fmt.Errorf("setting the epoll set non-blocking: %w", err)
	}
	c.epfd = epfd
	c.ep = os.NewFile(uintptr(epfd), "dns-udp-epoll")
	if c.epc, err = c.ep.SyscallConn(); err != nil {
		c.ep.Close()
		return fmt.Errorf("reaching the epoll set: %w", err)
	}
	return nil
}

// shutdown wakes the reader wherever it waits; it then sees closing set
// and returns. The socket stays open (writes fail) until close, which the
// caller calls once the reader and writers are gone, so that no call meets
// a closed or reused descriptor.
func (c *udpSocket) shutdown() {
	c.closing.Store(true)
	// On an unconnected UDP socket shutdown reports ENOTCONN but still
	// marks the socket shut and wakes its waiters, poll(2) and ep alike.
	unix.Shutdown(c.fd, unix.SHUT_RD)
}

func (c *udpSocket) close() error {
	var errs []error
	if err := c.ep.Close(); err != nil {
		errs = append(errs, fmt.Errorf("closing the udp socket's epoll set: %w", err))
	}
	if err := unix.Close(c.fd); err != nil {
		errs = append(errs, fmt.Errorf("closing udp socket: %w", err))
	}
	return errors.Join(errs...)
}

// batch holds the buffers of one recvmmsg call, size datagrams of up to
// readBufferSize bytes with their senders, and of the sendmmsg call that
// answers them.
type batch struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // large enough for either family
	bufs  [][]byte

	out    []unix.Mmsghdr
	outIov []unix.Iovec
}

func newBatch(size int) *batch {
	b := &batch{
		hdrs:   make([]unix.Mmsghdr, size),
		iovs:   make([]unix.Iovec, size),
		names:  make([]unix.RawSockaddrInet6, size),
		bufs:   make([][]byte, size),
		out:    make([]unix.Mmsghdr, 0, size),
		outIov: make([]unix.Iovec, size),
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

// errClosed is returned by the reads once the socket is shut down.
var errClosed = errors.New("udp socket closed")

// tryRead reads the datagrams already queued, up to the batch size,
// without waiting. It returns 0 when none is queued. Datagrams longer than
// readBufferSize are cut.
func (c *udpSocket) tryRead(b *batch) (int, error) {
	for i := range b.hdrs {
		b.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		b.hdrs[i].Hdr.Flags = 0
		b.hdrs[i].Len = 0
	}
	for {
		if c.closing.Load() {
			return 0, errClosed
		}
		n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(c.fd),
			uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(len(b.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			if c.closing.Load() {
				// A shut-down socket reads as empty.
				return 0, errClosed
			}
			return int(n), nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, nil
		}
		return 0, errno
	}
}

// wait blocks the thread in poll(2) until a datagram is queued, at most
// for d (a few milliseconds: see udpSocket). It reports whether one is
// queued, and whether a signal ended the wait, in which case the caller
// must let the scheduler run before anything else.
func (c *udpSocket) wait(d time.Duration) (ready, interrupted bool) {
	pfd := unix.PollFd{Fd: int32(c.fd), Events: unix.POLLIN}
	ts := unix.NsecToTimespec(d.Nanoseconds())
	n, _, errno := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	if errno == unix.EINTR {
		return true, true
	}
	// Another error cannot come from a valid descriptor; the network
	// poller will report it.
	return errno == 0 && n > 0, false
}

// read parks in the network poller, with no bound, until datagrams are
// queued, and reads them.
func (c *udpSocket) read(b *batch) (int, error) {
	for {
		if c.closing.Load() {
			return 0, errClosed
		}
		// Arm the socket in ep for one event; if a datagram is already
		// queued the event is there at once.
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(c.fd)}
		if _, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(c.epfd), unix.EPOLL_CTL_MOD,
			uintptr(c.fd), uintptr(unsafe.Pointer(&ev)), 0, 0); errno != 0 {
			return 0, fmt.Errorf("arming the udp socket in its epoll set: %w", errno)
		}
		err := c.epc.Read(func(epfd uintptr) bool {
			// Take the event, so that ep is empty again and its next one
			// reaches the poller.
			var got [1]unix.EpollEvent
			n, _, _ := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, epfd, uintptr(unsafe.Pointer(&got[0])), 1, 0, 0, 0)
			return n > 0
		})
		if err != nil {
			return 0, fmt.Errorf("waiting for queries: %w", err)
		}
		n, err := c.tryRead(b)
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// datagram returns the i-th datagram of the last read.
func (b *batch) datagram(i int) []byte { return b.bufs[i][:b.hdrs[i].Len] }

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

// reply sends outs[i] (none when empty) to the sender of the i-th
// datagram of the last read, all in one sendmmsg. A datagram the kernel
// refuses (a full buffer, a sender gone) is dropped, as a lost one is.
func (c *udpSocket) reply(b *batch, outs [][]byte) {
	msgs := b.out[:0]
	for i, p := range outs {
		if len(p) == 0 {
			continue
		}
		b.outIov[i].Base = &p[0]
		b.outIov[i].SetLen(len(p))
		var m unix.Mmsghdr
		m.Hdr.Iov = &b.outIov[i]
		m.Hdr.SetIovlen(1)
		m.Hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		m.Hdr.Namelen = b.hdrs[i].Hdr.Namelen
		msgs = append(msgs, m)
	}
	for len(msgs) > 0 {
		n, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(c.fd),
			uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), unix.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == unix.EINTR:
			continue
		case errno != 0 || n == 0:
			// Skip the datagram the kernel refused and send the rest.
			n = 1
		}
		msgs = msgs[n:]
	}
}

// writeTo sends p to to, for answers sent from outside the reader.
func (c *udpSocket) writeTo(p []byte, to netip.AddrPort) error {
	return unix.Sendto(c.fd, p, unix.MSG_DONTWAIT, sockaddrOf(to))
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
