// Package guest talks to a running banger guest over SSH, in process, with
// golang.org/x/crypto/ssh: it owns the user's banger key pair, the per-VM host
// keys and banger's own known_hosts file, waits for a booting guest's SSH
// server, and runs commands, uploads trees as streamed tar archives and
// downloads files over one connection with many sessions. It never runs host
// programs.
package guest
