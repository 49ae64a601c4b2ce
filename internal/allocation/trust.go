package allocation

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// CheckTrustedPath checks that nobody but owner (and root) can change what
// path names: path is absolute and clean, and it and every directory above
// it is owned by owner or root, is no symlink, and is writable by neither
// group nor others, except for a root-owned sticky directory such as /tmp
// on the way (whose entries only their owners may rename). It is how the
// helper and setup decide whether to believe a file or directory; owner is
// 0 outside tests.
func CheckTrustedPath(path string, owner int) error {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return fmt.Errorf("checking %s: want an absolute, clean path", path)
	}
	for p := path; ; p = filepath.Dir(p) {
		st, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("checking %s: %w", path, err)
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("checking %s: no owner information for %s", path, p)
		}
		uid := int(sys.Uid)
		mode := st.Mode()
		switch {
		case mode&fs.ModeSymlink != 0:
			return fmt.Errorf("checking %s: %s is a symlink; want real directories owned by root", path, p)
		case uid != owner && uid != 0:
			return fmt.Errorf("checking %s: %s is owned by uid %d, want root", path, p, uid)
		case mode&0o022 != 0 && p != path && mode.IsDir() && mode&fs.ModeSticky != 0 && uid == 0:
			// A root-owned sticky directory (/tmp) on the way is fine.
		case mode&0o022 != 0:
			return fmt.Errorf("checking %s: %s is writable by group or others (mode %04o); run `chmod go-w %s`", path, p, mode.Perm(), p)
		}
		if p == "/" {
			return nil
		}
	}
}

// readTrusted reads a regular file that must be owned by owner and not
// writable by group or others, without following a symlink at its end, and
// of at most max bytes. Its directory must pass CheckTrustedPath.
func readTrusted(path string, owner int, max int64) ([]byte, error) {
	if err := CheckTrustedPath(filepath.Dir(path), owner); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("reading %s: it is a symlink; want a regular file owned by root", path)
		}
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	switch {
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("reading %s: not a regular file", path)
	case !ok:
		return nil, fmt.Errorf("reading %s: no owner information", path)
	case int(sys.Uid) != owner:
		return nil, fmt.Errorf("reading %s: owned by uid %d, want root; recreate it with `sudo banger system setup`", path, sys.Uid)
	case st.Mode()&0o022 != 0:
		return nil, fmt.Errorf("reading %s: writable by group or others (mode %04o); recreate it with `sudo banger system setup`", path, st.Mode().Perm())
	case st.Size() > max:
		return nil, fmt.Errorf("reading %s: %d bytes, more than %d", path, st.Size(), max)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("reading %s: more than %d bytes", path, max)
	}
	return data, nil
}
