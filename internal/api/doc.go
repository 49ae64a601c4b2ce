// Package api defines the wire protocol between the banger CLI (and TUI) and
// the bangerd daemon: versioned HTTP+JSON routes under /v1/ on a unix socket,
// hand-written request and response types, one error shape, NDJSON progress
// and event streams, and a typed client whose zero value works.
package api
