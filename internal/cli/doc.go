// Package cli is the banger command line: Cobra commands (one file each),
// output formats, progress rendering, starting bangerd on demand, and the
// hand-off to the OpenSSH client. It talks to the daemon only through the
// typed client in package api.
package cli
