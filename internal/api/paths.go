package api

import (
	"fmt"
	"os"
	"path/filepath"
)

// SocketName is the daemon socket's file name inside the runtime directory.
const SocketName = "bangerd.sock"

// RuntimeDir is banger's directory for sockets: $XDG_RUNTIME_DIR/banger, or
// /run/user/UID/banger, or a per-user directory under the temp dir.
func RuntimeDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "banger")
	}
	if d := fmt.Sprintf("/run/user/%d", os.Getuid()); dirExists(d) {
		return filepath.Join(d, "banger")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("banger-%d", os.Getuid()))
}

// DefaultSocket is the daemon socket of the current user.
func DefaultSocket() string { return filepath.Join(RuntimeDir(), SocketName) }

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
