// Package buildinfo identifies a banger build: the version stamped at link
// time and an executable identity that changes whenever a binary is rebuilt,
// which the CLI compares with the running daemon's to restart a stale one.
package buildinfo

import (
	"fmt"
	"os"
	"runtime/debug"
)

// Version is set at link time: -ldflags "-X banger/internal/buildinfo.Version=v0.1.0".
var Version = "dev"

// Commit returns the VCS revision the binary was built from, with "+dirty"
// when the tree had changes, or "" when unknown.
func Commit() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
			if len(rev) > 12 {
				rev = rev[:12]
			}
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return ""
	}
	return rev + dirty
}

// String is the human-readable version, e.g. "v0.1.0 (3f2a9c1b0d4e)".
func String() string {
	if c := Commit(); c != "" {
		return fmt.Sprintf("%s (%s)", Version, c)
	}
	return Version
}

// ExecutableID identifies the binary file at path by size and modification
// time. It is cheap (one stat) and changes on every rebuild or install.
func ExecutableID(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("identifying executable %s: %w", path, err)
	}
	return fmt.Sprintf("%x-%x", st.Size(), st.ModTime().UnixNano()), nil
}
