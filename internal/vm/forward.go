package vm

import (
	"net/netip"
	"strconv"
)

// Forward is a port of the host forwarded to a port of a VM's guest.
type Forward struct {
	VMID      string
	Proto     string // "tcp" or "udp"
	HostAddr  netip.Addr
	HostPort  uint16
	GuestPort uint16
}

// String renders the forward as the spec that makes it:
// ADDR:HOSTPORT:GUESTPORT/PROTO.
func (f Forward) String() string {
	return netip.AddrPortFrom(f.HostAddr, f.HostPort).String() + ":" + strconv.Itoa(int(f.GuestPort)) + "/" + f.Proto
}
