package disk

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// scrubbedPaths are the files that make a root disk one VM's own and must
// not reach an image made from it: every SSH host key (each VM gets its own
// at create time), root's authorized_keys (the VM's, written by banger), the
// hostname, systemd's random seed (clones must not share it) and root's
// shell history.
func scrubbedPaths() []string {
	var p []string
	for _, t := range []string{"rsa", "ecdsa", "dsa", "ed25519"} {
		k := "/etc/ssh/ssh_host_" + t + "_key"
		p = append(p, k, k+".pub")
	}
	return append(p,
		"/root/.ssh/authorized_keys",
		"/etc/hostname",
		"/var/lib/systemd/random-seed",
		"/root/.bash_history",
	)
}

// Scrub removes a VM's identity from the ext4 root disk image at rootfs so
// that it can become an image: the SSH host keys, root's authorized_keys,
// the hostname, the random seed and shell history are deleted and
// /etc/machine-id is emptied (systemd treats an empty file as "first boot";
// banger writes a fresh id into every VM made from the image). It works
// without mounting, reads the result back and fails unless every scrubbed
// path is gone and the machine-id is empty. The disk must not be in use.
func (m *Manager) Scrub(ctx context.Context, rootfs string) error {
	remove := scrubbedPaths()
	files := []guestFile{{Path: "/etc/machine-id", Data: []byte{}, Perm: 0o444}}
	if err := m.writeFiles(ctx, rootfs, edit{Files: files, Remove: remove}); err != nil {
		return fmt.Errorf("scrubbing vm identity from %s: %w", rootfs, err)
	}
	probe := make([]string, 0, len(remove))
	for _, p := range remove {
		probe = append(probe, "stat "+p)
	}
	out, err := m.debugfs(ctx, rootfs, false, probe)
	if err != nil {
		return fmt.Errorf("scrubbing vm identity from %s: reading back: %w", rootfs, err)
	}
	var left []string
	for i, p := range remove {
		if _, ok := parseStat(out[i]); ok {
			left = append(left, p)
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("scrubbing vm identity from %s: still present after removal: %s", rootfs, strings.Join(left, ", "))
	}
	m.log.Debug("scrubbed vm identity", "path", rootfs)
	return nil
}

// ErrNoFile is returned (wrapped) by ReadFile when the image lacks the file.
var ErrNoFile = errors.New("no such file in the image")

// ReadFile returns the contents of the regular file at path inside the ext4
// image without mounting it.
func (m *Manager) ReadFile(ctx context.Context, image, path string) ([]byte, error) {
	out, err := m.debugfs(ctx, image, false, []string{"stat " + path})
	if err != nil {
		return nil, fmt.Errorf("reading %s from %s: %w", path, image, err)
	}
	ino, ok := parseStat(out[0])
	if !ok {
		return nil, fmt.Errorf("reading %s from %s: %w", path, image, ErrNoFile)
	}
	if ino.Type != "regular" {
		return nil, fmt.Errorf("reading %s from %s: it is a %s, not a regular file", path, image, ino.Type)
	}
	data, err := m.tool(ctx, "debugfs", "-R", "cat "+path, image)
	if err != nil {
		return nil, fmt.Errorf("reading %s from %s: %w", path, image, err)
	}
	if int64(len(data)) != ino.Size {
		return nil, fmt.Errorf("reading %s from %s: got %d bytes, the inode says %d", path, image, len(data), ino.Size)
	}
	return data, nil
}

// CheckClean runs a read-only full check (`e2fsck -f -n`) of the ext4 image
// at path and fails when it reports any problem. It changes nothing.
func (m *Manager) CheckClean(ctx context.Context, path string) error {
	if _, err := m.tool(ctx, "e2fsck", "-f", "-n", path); err != nil {
		return fmt.Errorf("checking the filesystem in %s (e2fsck -f -n): %w; the guest may not have shut down cleanly", path, err)
	}
	return nil
}
