// Package forward forwards host ports to a guest's ports over the bridge:
// the host reaches guests by address, so a forward is a listener on the
// host that connects to GUESTIP:GUESTPORT, with no SSH in between. It
// parses and checks `[ADDR:]HOSTPORT:GUESTPORT[/tcp|/udp]` specs, runs TCP
// forwards (kernel splice both ways, half-close passed on) and UDP
// forwards (one session per client address, closed when idle), and turns
// bind failures into errors that say what to do.
package forward
