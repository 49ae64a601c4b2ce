package disk

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrShrink is returned (wrapped) when asked to make a disk smaller.
var ErrShrink = errors.New("disks can only grow")

// Grow makes the ext4 image at path size bytes large, file and filesystem,
// while no VM uses it. Growing to the current size repairs a file whose
// filesystem is smaller than it (an earlier growth that stopped half way).
//
// It never loses data: it first checks the filesystem (e2fsck -f -p) and
// changes nothing when that finds errors it cannot fix; when the filesystem
// allows reflinks it keeps a free snapshot of the file and restores it if
// resize2fs fails; without a snapshot a failed resize2fs leaves a larger file
// holding the intact, unchanged filesystem, and the error says so.
func (m *Manager) Grow(ctx context.Context, path string, size int64) error {
	if err := checkSize(size); err != nil {
		return fmt.Errorf("growing %s: %w", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("growing %s: %w", path, err)
	}
	if size < st.Size() {
		return fmt.Errorf("growing %s to %s: %w: it is already %s; make a new disk to get a smaller one", path, human(size), ErrShrink, human(st.Size()))
	}
	fsSize, err := m.FSSize(ctx, path)
	if err != nil {
		return fmt.Errorf("growing %s: %w", path, err)
	}
	if size == st.Size() && fsSize >= size {
		return nil
	}
	if err := m.check(ctx, path); err != nil {
		return fmt.Errorf("growing %s: %w", path, err)
	}

	backup := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+tempMarker+"grow-backup")
	os.Remove(backup)
	hasBackup := false
	if _, err := cloneFile(ctx, path, backup, reflinkOnly); err == nil {
		hasBackup = true
		defer os.Remove(backup)
	} else {
		m.log.Debug("growing without a snapshot", "path", path, "reason", err)
	}

	if err := os.Truncate(path, size); err != nil {
		return fmt.Errorf("growing %s: extending the file: %w", path, err)
	}
	_, rerr := m.tool(ctx, "resize2fs", path)
	if rerr == nil {
		m.log.Debug("grew disk", "path", path, "from", st.Size(), "to", size)
		return nil
	}
	if hasBackup {
		if err := os.Rename(backup, path); err == nil {
			return fmt.Errorf("growing %s: resizing the filesystem: %w; the disk was restored unchanged", path, rerr)
		}
	}
	// No snapshot: the filesystem was checked clean before resize2fs. Say
	// whether it still is.
	if _, cerr := m.tool(ctx, "e2fsck", "-f", "-n", path); cerr != nil {
		return fmt.Errorf("growing %s: resizing the filesystem: %w; the filesystem now reports errors: run `e2fsck -f %s` before using the disk", path, rerr, path)
	}
	return fmt.Errorf("growing %s: resizing the filesystem: %w; the file is now %s but its filesystem kept its old size and is intact, so the disk is usable; retry, or run `resize2fs %s`", path, rerr, human(size), path)
}

// check runs `e2fsck -f -p`, which fixes only what is safe to fix without
// asking. Exit statuses 1 and 2 mean it fixed something; 4 and up mean it
// could not, and nothing is changed.
// Repair replays the journal of the ext4 file system in the image at path
// and fixes what e2fsck fixes unattended (e2fsck -f -p); nothing may have
// it open. A layer needs it after every boot: the guest's system never
// sees the mount the initramfs made of it, so it never unmounts it.
func (m *Manager) Repair(ctx context.Context, path string) error {
	if err := m.check(ctx, path); err != nil {
		return fmt.Errorf("repairing %s: %w", path, err)
	}
	return nil
}

func (m *Manager) check(ctx context.Context, path string) error {
	_, err := m.tool(ctx, "e2fsck", "-f", "-p", path)
	switch code := exitCode(err); {
	case err == nil:
		return nil
	case code == 1 || code == 2:
		m.log.Info("e2fsck repaired the filesystem", "path", path)
		return nil
	case code >= 4:
		return fmt.Errorf("checking the filesystem: it has errors e2fsck cannot fix unattended, so nothing was changed; with the VM stopped run `e2fsck -f %s`, then retry: %w", path, err)
	default:
		return fmt.Errorf("checking the filesystem: %w", err)
	}
}

// FSSize returns the size in bytes of the ext filesystem in the image at
// path, read from its superblock with `debugfs -R stats`.
func (m *Manager) FSSize(ctx context.Context, path string) (int64, error) {
	out, err := m.tool(ctx, "debugfs", "-R", "stats", path)
	if err != nil {
		return 0, fmt.Errorf("reading filesystem size of %s (is it an ext4 image?): %w", path, err)
	}
	n, err := ParseFSSize(out)
	if err != nil {
		return 0, fmt.Errorf("reading filesystem size of %s: %w", path, err)
	}
	return n, nil
}

// ParseFSSize computes block count × block size from the output of
// `debugfs -R stats` (or `dumpe2fs -h`).
func ParseFSSize(out []byte) (int64, error) {
	var count, bsize int64
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch k {
		case "Block count":
			count, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		case "Block size":
			bsize, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	if count <= 0 || bsize <= 0 {
		return 0, errors.New("no block count or block size in the superblock listing")
	}
	return count * bsize, nil
}

// ParseFreeBytes computes free blocks × block size from the output of
// `debugfs -R "stats -h"` (or `dumpe2fs -h`).
func ParseFreeBytes(out []byte) (int64, error) {
	var free, bsize int64 = -1, 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch k {
		case "Free blocks":
			free, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		case "Block size":
			bsize, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	if free < 0 || bsize <= 0 {
		return 0, errors.New("no free block count or block size in the superblock listing")
	}
	return free * bsize, nil
}

// human renders a byte count the way users type sizes.
func human(n int64) string {
	for _, u := range []struct {
		s string
		v int64
	}{{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n >= u.v && n%u.v == 0 {
			return strconv.FormatInt(n/u.v, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// Extend makes the file at path size bytes large without touching the file
// system in it: for a disk in use, whose guest grows the file system online.
// It refuses to shrink.
func (m *Manager) Extend(path string, size int64) error {
	if err := checkSize(size); err != nil {
		return fmt.Errorf("extending %s: %w", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("extending %s: %w", path, err)
	}
	if size < st.Size() {
		return fmt.Errorf("extending %s to %s: %w: it is already %s", path, human(size), ErrShrink, human(st.Size()))
	}
	if err := os.Truncate(path, size); err != nil {
		return fmt.Errorf("extending %s: %w", path, err)
	}
	return nil
}
