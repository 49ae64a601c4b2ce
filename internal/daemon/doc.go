// Package daemon is bangerd: the HTTP+JSON API on the user's unix socket,
// lifecycle orchestration (create, start, stop, kill, rm as ordered steps
// that each register an undo), the event stream, and the reconcile loop
// that compares the database with the host. Host side effects happen only
// through the layer interfaces in layers.go, wired in by New's caller.
package daemon
