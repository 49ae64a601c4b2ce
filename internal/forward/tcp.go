package forward

import (
	"errors"
	"io"
	"net"
	"time"
)

func (f *Forwarder) startTCP(fw *forward) error {
	ln, err := listenConfig().Listen(fw.ctx, "tcp", fw.spec.HostAddrPort().String())
	if err != nil {
		return err
	}
	fw.closer = ln
	fw.wg.Add(1)
	go func() {
		defer fw.wg.Done()
		f.acceptTCP(fw, ln.(*net.TCPListener))
	}()
	return nil
}

func (f *Forwarder) acceptTCP(fw *forward, ln *net.TCPListener) {
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if isClosed(err) || fw.ctx.Err() != nil {
				return
			}
			// Out of file descriptors or similar: back off, keep serving.
			f.log.Warn("forward accept failed", "forward", fw.spec.String(), "err", err)
			select {
			case <-fw.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if !fw.track(c) {
			c.Close()
			return
		}
		fw.wg.Add(1)
		go func() {
			defer fw.wg.Done()
			defer fw.untrack(c)
			f.serveTCP(fw, c)
		}()
	}
}

// serveTCP connects a client to the guest and copies both ways. A guest
// that does not answer gets the client reset, as a closed port would.
func (f *Forwarder) serveTCP(fw *forward, client *net.TCPConn) {
	d := net.Dialer{Timeout: f.opts.DialTimeout}
	gc, err := d.DialContext(fw.ctx, "tcp", fw.target.String())
	if err != nil {
		f.log.Debug("forward could not reach the guest", "forward", fw.spec.String(), "target", fw.target.String(), "err", err)
		client.SetLinger(0)
		client.Close()
		return
	}
	guest := gc.(*net.TCPConn)
	if !fw.track(guest) {
		guest.Close()
		client.Close()
		return
	}
	defer fw.untrack(guest)
	splice(client, guest)
}

// splice copies a to b and b to a until both directions end. An end of
// stream is passed on as a half-close (the other side can still answer);
// an error in either direction closes both. io.Copy between two
// *net.TCPConn uses splice(2) on Linux, so the data never enters user
// space.
func splice(a, b *net.TCPConn) {
	done := make(chan error, 2)
	pipe := func(dst, src *net.TCPConn) {
		_, err := io.Copy(dst, src)
		if err == nil {
			err = dst.CloseWrite()
		}
		done <- err
	}
	go pipe(b, a)
	go pipe(a, b)
	err := <-done
	if err != nil && !errors.Is(err, net.ErrClosed) {
		// A reset or other failure: the conversation is over both ways.
		a.SetLinger(0)
		b.SetLinger(0)
		a.Close()
		b.Close()
	}
	<-done
	a.Close()
	b.Close()
}
