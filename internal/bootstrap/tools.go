package bootstrap

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"banger/internal/system"
)

// Tool is a host program (or file) the bootstrap needs, with the Debian
// package that provides it.
type Tool struct {
	Name    string // program name, or an absolute path for a file
	Package string
	Why     string
}

// RequiredTools lists what Build needs on the host in mode m.
func RequiredTools(m Mode) []Tool {
	tools := []Tool{
		{Name: "mmdebstrap", Package: "mmdebstrap", Why: "builds the root filesystem from Debian packages"},
		{Name: "mkfs.ext4", Package: "e2fsprogs", Why: "writes the root filesystem image"},
		{Name: "debugfs", Package: "e2fsprogs", Why: "adds the /dev nodes to the root filesystem image"},
		{Name: "/usr/share/keyrings/debian-archive-keyring.gpg", Package: "debian-archive-keyring", Why: "verifies the Debian archive"},
	}
	if m == ModeRootless {
		tools = append(tools,
			Tool{Name: "unshare", Package: "util-linux", Why: "enters the user namespace that builds without root"},
			Tool{Name: "newuidmap", Package: "uidmap", Why: "maps your subordinate uids into that user namespace"},
			Tool{Name: "newgidmap", Package: "uidmap", Why: "maps your subordinate gids into that user namespace"})
	}
	return tools
}

// CheckTools reports every tool of mode m that is missing, with the
// command that installs it. lookPath finds a program by name, or checks
// that an absolute path exists; nil means HostLookPath.
func CheckTools(m Mode, lookPath func(string) (string, error)) error {
	if lookPath == nil {
		lookPath = HostLookPath
	}
	var errs []error
	for _, t := range RequiredTools(m) {
		if _, err := lookPath(t.Name); err != nil {
			errs = append(errs, fmt.Errorf("%s is missing (it %s): install it with `apt-get install %s`", t.Name, t.Why, t.Package))
		}
	}
	return errors.Join(errs...)
}

// HostLookPath finds a program with system.LookPath, or checks that an
// absolute path exists.
func HostLookPath(name string) (string, error) {
	if filepath.IsAbs(name) {
		_, err := os.Stat(name)
		return name, err
	}
	return system.LookPath(name)
}
