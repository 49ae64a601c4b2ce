// Package allocation gives each user of a host their own share of banger's
// host networking, so several users' bangerd run side by side: a bridge, an
// IPv4 subnet, a TAP name prefix, four iptables chains, a loopback DNS port,
// a guest DNS port and a DNS zone. `sudo banger system setup` allocates once
// per user (Allocate, pure: it never overlaps a host route, a host link or
// another user's allocation) and records the result where only root can
// write (Registry, /etc/banger/users/USER.json). The privileged helper
// re-reads that record on every call and takes nothing else from its caller;
// the user's bangerd reads it to know its bridge, subnet and ports.
//
// Default is the allocation of bangerd running as root: banger0,
// 10.213.0.0/24, the BANGER-* chains, port 42069 and the zone "vm.", as
// before per-user allocations existed. It needs no record.
package allocation
