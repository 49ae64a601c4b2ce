// Package privhelper is banger's privilege boundary: the few host network
// changes a user's bangerd cannot make itself (its bridge, its TAPs, its
// NAT chains, its bridge's resolver settings), done for it by a tiny
// program run as root through `sudo -n`, one change per call.
//
// The helper (cmd/banger-helper, Main here) trusts nothing its caller
// says beyond a fixed verb grammar (Parse): it learns who called from
// sudo's SUDO_UID, reads that user's allocation from the root-owned record
// (package allocation), checks every argument by pattern and against the
// host's state (Check: a TAP must carry the user's prefix, belong to the
// user's uid and sit on the user's bridge), and then acts on that
// allocation's names only. It runs no shell, reads no path from its caller,
// drops its environment before running anything, and refuses anything else
// with a message, exit status 2, and no change.
//
// Plumbing is what bangerd calls: Direct does the work in-process (bangerd
// running as root, and the helper itself after its checks); Helper runs
// the helper through sudo. For picks one.
package privhelper
