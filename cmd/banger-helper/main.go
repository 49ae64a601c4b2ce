// Command banger-helper is banger's privileged helper: run as root through
// `sudo -n` by a user's bangerd, it makes one change to that user's bridge,
// TAPs, NAT chains or resolver settings, as recorded by `banger system
// setup`, and refuses anything else. See internal/privhelper and
// docs/security.md.
package main

import (
	"os"

	"banger/internal/privhelper"
)

// The helper's fixed locations. They are set when the helper is built (a
// test builds one with -ldflags "-X main.usersDir=… -X main.lockPath=…"
// pointing into its temporary directories); nothing the helper's caller
// passes can change them.
var (
	usersDir = "/etc/banger/users"
	lockPath = "/run/banger/helper.lock"
)

func main() {
	os.Exit(privhelper.Main(privhelper.Paths{UsersDir: usersDir, Lock: lockPath}))
}
