package bootstrap

import (
	"errors"
	"fmt"
	"os"
)

// Tool is a host program (or file) the bootstrap needs, with the Debian
// package that provides it.
type Tool struct {
	Name    string // program name, or an absolute path for a file
	Package string
	Why     string
}

// RequiredTools lists what Build needs on the host.
func RequiredTools() []Tool {
	return []Tool{
		{Name: "mmdebstrap", Package: "mmdebstrap", Why: "builds the root filesystem from Debian packages"},
		{Name: "mkfs.ext4", Package: "e2fsprogs", Why: "writes the root filesystem image"},
		{Name: "/usr/share/keyrings/debian-archive-keyring.gpg", Package: "debian-archive-keyring", Why: "verifies the Debian archive"},
	}
}

// CheckTools reports every missing tool with the command that installs it.
// lookPath is system.LookPath in production.
func CheckTools(lookPath func(string) (string, error)) error {
	var errs []error
	for _, t := range RequiredTools() {
		var err error
		if t.Name[0] == '/' {
			_, err = os.Stat(t.Name)
		} else {
			_, err = lookPath(t.Name)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s is missing (it %s): install it with `apt-get install %s`", t.Name, t.Why, t.Package))
		}
	}
	return errors.Join(errs...)
}
