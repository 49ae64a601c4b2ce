package disk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
)

// guestFile is one file to write into an image.
type guestFile struct {
	Path     string
	Data     []byte
	Perm     uint32 // permission bits, e.g. 0o600
	UID, GID uint32
}

// guestDir is a directory that must exist with the given mode and owner.
type guestDir struct {
	Path     string
	Perm     uint32
	UID, GID uint32
}

// edit is a set of changes debugfs makes in an image in one run.
type edit struct {
	// Dirs are made when missing, in order (parents first), and always
	// given their mode and owner.
	Dirs []guestDir
	// Remove lists non-directories deleted when present.
	Remove []string
	// Files are written, replacing any non-directory there.
	Files []guestFile
	// Whiteouts become overlayfs whiteouts (character devices 0/0, mode
	// 0, owned by root), replacing any non-directory there.
	Whiteouts []string
}

// paths lists every path the edit touches, for the probe.
func (e edit) paths() []string {
	var p []string
	for _, d := range e.Dirs {
		p = append(p, d.Path)
	}
	p = append(p, e.Remove...)
	for _, f := range e.Files {
		p = append(p, f.Path)
	}
	return append(p, e.Whiteouts...)
}

// inode is the part of debugfs's stat output an edit checks.
type inode struct {
	Type           string // "regular", "directory", "symlink", "character special", …
	Perm, UID, GID uint32
	Size           int64
	Major, Minor   uint32 // devices
}

func (i inode) whiteout() bool { return i.Type == "character special" && i.Major == 0 && i.Minor == 0 }

// writeFiles makes the edit in the image and verifies the result. It runs
// debugfs twice: to see what exists (debugfs's mkdir corrupts the
// filesystem when the directory exists, and its write refuses to replace a
// file), then to write and read everything back.
func (m *Manager) writeFiles(ctx context.Context, image string, e edit) error {
	var s script
	s.add("stat", "/")
	for _, p := range e.paths() {
		s.add("stat", p)
	}
	if s.err != nil {
		return s.err
	}
	out, err := m.debugfs(ctx, image, false, s.cmds)
	if err != nil {
		return fmt.Errorf("inspecting the image: %w", err)
	}
	if _, ok := parseStat(out[0]); !ok {
		return errors.New("inspecting the image: no root directory; is it an ext4 filesystem image?")
	}
	return m.applyEdit(ctx, image, e, existingFrom(e.paths(), out[1:]))
}

// existingFrom maps each probed path to its stat, leaving out the missing.
func existingFrom(paths []string, out []string) map[string]inode {
	existing := map[string]inode{}
	for i, p := range paths {
		if ino, ok := parseStat(out[i]); ok {
			existing[p] = ino
		}
	}
	return existing
}

// applyEdit makes the edit given what exists in the image, reading
// everything back in the same debugfs session: debugfs exits 0 even when a
// command fails, so the read-back is how failures show.
func (m *Manager) applyEdit(ctx context.Context, image string, e edit, existing map[string]inode) error {
	staging, err := os.MkdirTemp("", "banger-identity-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(staging)
	hostPaths := map[string]string{}
	for i, f := range e.Files {
		p := filepath.Join(staging, strconv.Itoa(i))
		if err := os.WriteFile(p, f.Data, 0o600); err != nil {
			return err
		}
		hostPaths[f.Path] = p
	}
	cmds, err := writeScript(e, existing, hostPaths)
	if err != nil {
		return err
	}
	verify := verifyScript(e)
	out, err := m.debugfs(ctx, image, true, append(cmds, verify...))
	if err != nil {
		return fmt.Errorf("writing files: %w", err)
	}
	return checkWritten(e, out[len(cmds):])
}

// writeScript renders the debugfs commands that make the edit, given what
// exists already.
func writeScript(e edit, existing map[string]inode, hostPaths map[string]string) ([]string, error) {
	var s script
	owned := func(p string, typeBits, perm, uid, gid uint32) {
		s.add("sif", p, "mode", fmt.Sprintf("0%o", typeBits|perm))
		s.add("sif", p, "uid", strconv.FormatUint(uint64(uid), 10))
		s.add("sif", p, "gid", strconv.FormatUint(uint64(gid), 10))
	}
	for _, d := range e.Dirs {
		if ino, ok := existing[d.Path]; ok {
			if ino.Type != "directory" {
				return nil, fmt.Errorf("%s in the image is a %s, not a directory", d.Path, ino.Type)
			}
		} else {
			s.add("mkdir", d.Path)
		}
		owned(d.Path, modeDir, d.Perm, d.UID, d.GID)
	}
	for _, p := range e.Remove {
		if ino, ok := existing[p]; ok && ino.Type != "directory" {
			s.add("rm", p)
		}
	}
	for _, f := range e.Files {
		if ino, ok := existing[f.Path]; ok {
			if ino.Type == "directory" {
				return nil, fmt.Errorf("%s in the image is a directory", f.Path)
			}
			s.add("rm", f.Path)
		}
		s.add("write", hostPaths[f.Path], f.Path)
		owned(f.Path, modeRegular, f.Perm, f.UID, f.GID)
	}
	cwd := "/"
	for _, w := range e.Whiteouts {
		if ino, ok := existing[w]; ok {
			if ino.whiteout() {
				continue
			}
			if ino.Type == "directory" {
				return nil, fmt.Errorf("%s in the image is a directory, which a whiteout cannot replace", w)
			}
			s.add("rm", w)
		}
		// mknod takes its name literally, relative to the working
		// directory: "/a/b" would become one entry named "/a/b".
		dir, name := path.Split(w)
		if dir != cwd {
			s.add("cd", dir)
			cwd = dir
		}
		s.add("mknod", name, "c", "0", "0")
	}
	if cwd != "/" {
		s.add("cd", "/")
	}
	return s.cmds, s.err
}

// verifyScript reads back what the edit made: stat and cat of each file,
// stat of each directory and whiteout. Its paths were accepted by
// writeScript, so it needs no error.
func verifyScript(e edit) []string {
	var s script
	for _, f := range e.Files {
		s.add("stat", f.Path)
		s.add("cat", f.Path)
	}
	for _, d := range e.Dirs {
		s.add("stat", d.Path)
	}
	for _, w := range e.Whiteouts {
		s.add("stat", w)
	}
	return s.cmds
}

// checkWritten compares the output of verifyScript with the edit.
func checkWritten(e edit, out []string) error {
	var errs []error
	i := 0
	for _, f := range e.Files {
		ino, ok := parseStat(out[i])
		content := out[i+1]
		i += 2
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s is missing after writing it", f.Path))
		case ino.Type != "regular" || ino.Perm != f.Perm || ino.UID != f.UID || ino.GID != f.GID:
			errs = append(errs, fmt.Errorf("%s is a %s with mode %04o owned by %d:%d, want a regular file with mode %04o owned by %d:%d", f.Path, ino.Type, ino.Perm, ino.UID, ino.GID, f.Perm, f.UID, f.GID))
		case content != string(f.Data):
			errs = append(errs, fmt.Errorf("%s reads back %d bytes that differ from the %d written", f.Path, len(content), len(f.Data)))
		}
	}
	for _, d := range e.Dirs {
		ino, ok := parseStat(out[i])
		i++
		if !ok || ino.Type != "directory" || ino.Perm != d.Perm || ino.UID != d.UID || ino.GID != d.GID {
			errs = append(errs, fmt.Errorf("%s is not a directory with mode %04o owned by %d:%d after writing (%+v)", d.Path, d.Perm, d.UID, d.GID, ino))
		}
	}
	for _, w := range e.Whiteouts {
		ino, ok := parseStat(out[i])
		i++
		if !ok || !ino.whiteout() {
			errs = append(errs, fmt.Errorf("%s is not a whiteout (character device 0/0) after writing (%+v)", w, ino))
		}
	}
	return errors.Join(errs...)
}
