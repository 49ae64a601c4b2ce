package forward

import (
	"io"
	"net"
	"testing"
)

// BenchmarkTCPThroughput sends 64 MiB per operation to a sink, directly
// and through a forward: the forward's target is ≥ 0.9× direct.
func BenchmarkTCPThroughput(b *testing.B) {
	sink, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	go func() {
		for {
			c, err := sink.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	sinkPort := uint16(sink.Addr().(*net.TCPAddr).Port)
	f := New(loopback, Options{})
	defer f.Close()
	spec := Spec{HostAddr: loopback, HostPort: freePort(b, TCP), GuestPort: sinkPort, Proto: TCP}
	if err := f.Start(spec); err != nil {
		b.Fatal(err)
	}
	const size = 64 << 20
	buf := make([]byte, 1<<20)
	for _, tc := range []struct{ name, addr string }{
		{"direct", sink.Addr().String()},
		{"forward", spec.HostAddrPort().String()},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				c, err := net.Dial("tcp", tc.addr)
				if err != nil {
					b.Fatal(err)
				}
				for sent := 0; sent < size; sent += len(buf) {
					if _, err := c.Write(buf); err != nil {
						b.Fatal(err)
					}
				}
				c.(*net.TCPConn).CloseWrite()
				io.Copy(io.Discard, c) // wait for the far end to finish
				c.Close()
			}
		})
	}
}
