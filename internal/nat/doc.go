// Package nat is banger's one implementation of the host firewall rules its
// guests need: masquerading of the guest subnet towards the host's uplinks,
// forwarding to and from the bridge (ahead of a Docker-style FORWARD DROP
// policy), net.ipv4.ip_forward, and optionally the redirect of guests' DNS
// queries for the gateway's port 53 to the daemon's unprivileged DNS port.
//
// Every rule lives in banger's own chains (BANGER-FWD, BANGER-IN in the
// filter table, BANGER-PRE, BANGER-POST in the nat table, by default; a
// user's allocation names its own, such as BANGER1-FWD), reached by one jump
// from each built-in chain, so Down removes the jumps, flushes and deletes
// the chains, and never touches anybody else's rules, another user's
// allocation's included. Changes are
// applied atomically per table with `iptables-restore --noflush`, after
// reading the current rules with `iptables-save`: Up checks before it acts,
// and is one command when the rules are already there.
//
// The commands run through system.InputRunner (system.Privileged() in
// production), with the iptables backend (nf_tables or legacy) the host
// already uses. FakeFirewall models the tables and chains for unit tests.
package nat
