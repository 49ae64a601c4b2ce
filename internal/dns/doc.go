// Package dns is bangerd's in-process DNS server for the `.vm` zone. It is
// authoritative for the zone (A records for running VMs, SOA and NS at the
// apex, reverse PTR records for the VM subnet), answers on loopback for the
// host and on the bridge gateway for guests, where it also forwards every
// other name to the host's upstream resolvers. Records live only in memory:
// the daemon rebuilds them from its VM table with Replace and keeps them in
// step with Set and Remove; a change is visible to the very next query.
//
// The package also holds the host resolver integration behind
// `banger dns setup|status|teardown`: detecting systemd-resolved, the exact
// resolvectl commands that route `~vm` to the daemon's listener, and the
// configuration snippets for dnsmasq and NetworkManager when resolved is not
// in use. Commands are built as data and run through banger/internal/system.
package dns
