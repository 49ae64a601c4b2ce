// Package network owns banger's host-side guest networking: one Linux bridge
// (banger0 by default, a user's own under a per-user allocation) that holds
// the gateway address of the subnet, and one persistent TAP device per VM
// attached to it, named with the allocation's TAP prefix. It also holds the
// pure rules that name a VM's TAP, check interface names, derive MAC
// addresses and allocate a guest's IPv4 address from the subnet.
//
// Every change goes through netlink (vishvananda/netlink) behind the small
// Links interface; FakeLinks is a stateful stand-in for unit tests. All
// operations are idempotent: creating what exists and deleting what is gone
// are no-ops, so the daemon can replay them freely while reconciling.
package network
