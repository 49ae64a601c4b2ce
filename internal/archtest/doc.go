// Package archtest holds the tests that enforce banger's architecture: which
// packages may start processes, what the CLI binary may link, and that every
// package documents itself. It has no code of its own.
package archtest
