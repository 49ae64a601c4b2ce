// Package network owns banger's host-side guest networking: one Linux bridge
// (banger0 by default) that holds the gateway address of banger's subnet, and
// one persistent TAP device per VM attached to it. It also holds the pure
// rules that name a VM's TAP, derive its MAC addresses and allocate its IPv4
// address from the subnet.
//
// Every change goes through netlink (vishvananda/netlink) behind the small
// Links interface; FakeLinks is a stateful stand-in for unit tests. All
// operations are idempotent: creating what exists and deleting what is gone
// are no-ops, so the daemon can replay them freely while reconciling.
package network
