package disk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Method says how a disk was cloned.
type Method string

const (
	// Reflink clones share the source's blocks until either side writes
	// (FICLONE on XFS, btrfs, bcachefs…): instant and free of space.
	Reflink Method = "reflink"
	// SparseCopy copies only the source's data ranges; holes stay holes.
	SparseCopy Method = "sparse-copy"
)

// tempMarker is part of every temporary file name this package makes beside
// a destination, so RemoveTemps can find what an interrupted run left.
const tempMarker = ".banger-tmp-"

// CloneRoot clones the image file src to the new file dst (mode 0600: a
// root disk will hold the VM's SSH host key) and reports the method used. It
// writes a temporary file beside dst and renames it into place, so an
// interrupted clone never leaves a partial file under dst. An existing dst
// is an error, never overwritten.
func (m *Manager) CloneRoot(ctx context.Context, src, dst string) (Method, error) {
	method, err := cloneFile(ctx, src, dst, reflinkOrCopy)
	if err != nil {
		return "", err
	}
	m.log.Debug("cloned disk", "src", src, "path", dst, "method", string(method))
	return method, nil
}

// cloneMode says which methods cloneFile may use.
type cloneMode int

const (
	reflinkOrCopy cloneMode = iota
	reflinkOnly             // for cheap snapshots: fail rather than copy
	copyOnly                // for benchmarks of the fallback
)

// cloneFile clones src to dst as CloneRoot describes, with the methods mode
// allows.
func cloneFile(ctx context.Context, src, dst string, mode cloneMode) (Method, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("cloning %s: %w", src, err)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return "", fmt.Errorf("cloning %s: %w", src, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("cloning %s: not a regular file", src)
	}
	if _, err := os.Lstat(dst); err == nil {
		return "", fmt.Errorf("cloning %s to %s: %w", src, dst, fs.ErrExist)
	}
	var method Method
	err = writeAtomically(dst, func(out *os.File) error {
		if mode != copyOnly {
			err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd()))
			if err == nil {
				method = Reflink
				return nil
			}
			if mode == reflinkOnly {
				return fmt.Errorf("making a reflink: %w", err)
			}
		}
		method = SparseCopy
		return sparseCopy(ctx, in, out, st.Size())
	})
	if err != nil {
		return "", fmt.Errorf("cloning %s to %s: %w", src, dst, err)
	}
	return method, nil
}

// writeAtomically creates a temporary file beside dst, lets fill write it,
// and renames it to dst without replacing an existing file. The temporary
// file is removed on any failure.
func writeAtomically(dst string, fill func(*os.File) error) error {
	out, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+tempMarker+"*")
	if err != nil {
		return err
	}
	tmp := out.Name()
	err = out.Chmod(0o600)
	if err == nil {
		err = fill(out)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = renameNoReplace(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// renameNoReplace renames old to new, failing with fs.ErrExist rather than
// replacing new. Filesystems without RENAME_NOREPLACE get link+unlink, which
// has the same guarantee.
func renameNoReplace(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		if err = os.Link(oldpath, newpath); err == nil {
			return os.Remove(oldpath)
		}
		return err
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}

// chunk bounds one copy_file_range call, so cancellation is noticed.
const chunk = 64 << 20

// sparseCopy copies the data ranges of in (found with SEEK_DATA/SEEK_HOLE)
// to the same offsets of out, sized to size; holes are skipped and stay
// holes. Data moves in the kernel with copy_file_range; when the kernel
// refuses that (e.g. across some filesystems) a read/write copy that also
// skips all-zero blocks takes over.
func sparseCopy(ctx context.Context, in, out *os.File, size int64) error {
	if err := out.Truncate(size); err != nil {
		return err
	}
	inFd, outFd := int(in.Fd()), int(out.Fd())
	useCFR := true
	for off := int64(0); off < size; {
		data, err := unix.Seek(inFd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole remains
		}
		if err != nil {
			return fmt.Errorf("finding data at offset %d: %w", off, err)
		}
		hole, err := unix.Seek(inFd, data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("finding hole after offset %d: %w", data, err)
		}
		if hole > size {
			hole = size
		}
		for pos := data; pos < hole; {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := min(hole-pos, chunk)
			if useCFR {
				r, w := pos, pos
				c, err := unix.CopyFileRange(inFd, &r, outFd, &w, int(n), 0)
				switch {
				case err == nil && c > 0:
					pos += int64(c)
					continue
				case err == nil:
					return fmt.Errorf("copying at offset %d: source ended early (was it truncated?)", pos)
				case errors.Is(err, unix.EXDEV), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EINVAL):
					useCFR = false
				default:
					return fmt.Errorf("copying at offset %d: %w", pos, err)
				}
			}
			if err := copyNonZero(in, out, pos, n); err != nil {
				return err
			}
			pos += n
		}
		off = hole
	}
	return nil
}

// copyNonZero copies n bytes at off from in to out through a buffer,
// skipping 4 KiB blocks that are all zero (out is already sized, so skipped
// blocks read back as zeros).
func copyNonZero(in, out *os.File, off, n int64) error {
	const block = 4096
	buf := make([]byte, 1<<20)
	for n > 0 {
		want := min(n, int64(len(buf)))
		got, err := in.ReadAt(buf[:want], off)
		if err != nil && !(errors.Is(err, io.EOF) && int64(got) == want) {
			return fmt.Errorf("reading at offset %d: %w", off, err)
		}
		for b := 0; b < got; b += block {
			e := min(b+block, got)
			if isZero(buf[b:e]) {
				continue
			}
			if _, err := out.WriteAt(buf[b:e], off+int64(b)); err != nil {
				return fmt.Errorf("writing at offset %d: %w", off+int64(b), err)
			}
		}
		off += want
		n -= want
	}
	return nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// RemoveTemps deletes the temporary files (and Flatten's staging
// directories) that interrupted clones, disk creations, growths or
// flattenings left in dir, and returns their paths. Call it only when no
// disk operation on dir is in progress (e.g. at daemon start-up).
func RemoveTemps(dir string) ([]string, error) { return RemoveTempsBefore(dir, time.Time{}) }

// TempsBefore lists the temporary files of dir last changed before t (any
// time when t is zero), for directories disk operations may be using
// meanwhile: a blank disk is made in milliseconds, so one older than a
// minute belongs to no operation still running.
func TempsBefore(dir string, t time.Time) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing temporary disks in %s: %w", dir, err)
	}
	var temps []string
	for _, e := range entries {
		if !(e.Type().IsRegular() || e.IsDir()) || !strings.HasPrefix(e.Name(), ".") || !strings.Contains(e.Name(), tempMarker) {
			continue
		}
		if info, err := e.Info(); !t.IsZero() && (err != nil || !info.ModTime().Before(t)) {
			continue
		}
		temps = append(temps, filepath.Join(dir, e.Name()))
	}
	return temps, nil
}

// RemoveTempsBefore removes what TempsBefore lists.
func RemoveTempsBefore(dir string, t time.Time) ([]string, error) {
	temps, err := TempsBefore(dir, t)
	if err != nil {
		return nil, fmt.Errorf("removing temporary disks: %w", err)
	}
	var removed []string
	var errs []error
	for _, p := range temps {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, p)
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("removing temporary disks in %s: %w", dir, err)
	}
	return removed, nil
}
