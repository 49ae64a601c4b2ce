package bootstrap

import (
	"context"
	"fmt"

	"banger/internal/system"
)

// Mode says how a build makes files that the guest sees owned by root (and
// by its system users) on a host where it may not be root.
type Mode string

const (
	// ModeRoot is for a caller that is root: mmdebstrap, mkfs.ext4 and rm
	// run directly.
	ModeRoot Mode = "root"
	// ModeRootless is for any other user: every command that writes or
	// reads the guest's ownership runs in a user namespace in which the
	// user is root (uid and gid 0) and ids 1–65535 are the user's
	// subordinate ids (`unshare --map-auto --map-root-user`, which maps them
	// with the setuid newuidmap/newgidmap of the uidmap package). Files the
	// guest owns as root are the user's on the host, so Build reads the
	// kernel and modules without help; mkfs.ext4 records them as uid 0.
	ModeRootless Mode = "rootless"
)

// ModeFor returns the mode for a process with effective uid euid.
func ModeFor(euid int) Mode {
	if euid == 0 {
		return ModeRoot
	}
	return ModeRootless
}

// usernsPrefix enters a new user namespace with the user as root and the
// first block of their subordinate ids above it. Every namespace made this
// way maps the same ids, so a tree written in one is seen with the same
// owners by the next.
var usernsPrefix = []string{"unshare", "--user", "--map-auto", "--map-root-user", "--"}

// argv returns the command that runs argv with guest ownership in mode m.
func (m Mode) argv(argv ...string) []string {
	if m != ModeRootless {
		return argv
	}
	return append(append([]string(nil), usernsPrefix...), argv...)
}

// CheckUserNamespace makes sure a rootless build can enter its user
// namespace (`unshare --user --map-auto --map-root-user -- true`), so that
// missing subordinate ids or newuidmap are reported with the fix before
// anything is downloaded. Build runs it before a rootless build; a doctor
// may run it as its probe.
func CheckUserNamespace(ctx context.Context, r system.Runner) error {
	if err := r.Run(ctx, ModeRootless.argv("true")...); err != nil {
		return fmt.Errorf("entering a user namespace with your subordinate ids: %w "+
			"(run `sudo banger system setup` once for this user: it grants subordinate ids in /etc/subuid and /etc/subgid; "+
			"newuidmap and newgidmap come with `apt-get install uidmap`)", err)
	}
	return nil
}
