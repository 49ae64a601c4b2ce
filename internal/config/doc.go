// Package config loads banger's configuration file, derives every path from
// the XDG base directories (so setting them isolates a whole instance), and
// records where each effective value came from for `banger config show`.
package config
