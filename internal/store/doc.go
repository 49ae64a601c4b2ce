// Package store keeps banger's state in SQLite (modernc.org/sqlite, no cgo):
// WAL journal, synchronous=FULL, a busy timeout, foreign keys, one writer
// connection, and versioned migrations embedded in the binary. It turns
// SQLite's failure modes (busy, locked, corrupt, full disk) into errors that
// say what to do, and never rewrites a database it cannot read.
package store
