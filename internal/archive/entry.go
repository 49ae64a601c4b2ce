package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// write extracts one entry as name (a slash path relative to root).
func (x *extractor) write(root *os.Root, tr *tar.Reader, hdr *tar.Header, name string) error {
	var err error
	switch hdr.Typeflag {
	case tar.TypeDir:
		err = x.writeDir(root, hdr, name)
	case tar.TypeReg, tar.TypeGNUSparse, tar.TypeCont:
		err = x.writeFile(root, tr, hdr, name)
	case tar.TypeSymlink:
		if err = clearFor(root, name); err == nil {
			err = root.Symlink(hdr.Linkname, name)
		}
		x.sum.Symlinks++
	case tar.TypeLink:
		err = x.writeLink(root, hdr, name)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		x.sum.Skipped = append(x.sum.Skipped, fmt.Sprintf("%s: %s (special files are not copied to the host)", hdr.Name, typeName(hdr.Typeflag)))
	case tar.TypeXGlobalHeader:
	default:
		x.sum.Skipped = append(x.sum.Skipped, fmt.Sprintf("%s: unsupported entry type %q", hdr.Name, hdr.Typeflag))
	}
	if err != nil {
		return entryError(hdr.Name, err)
	}
	return nil
}

// entryError names the entry, and says so when os.Root refused a path
// that leads outside the destination.
func entryError(name string, err error) error {
	if strings.Contains(err.Error(), "path escapes from parent") {
		return fmt.Errorf("refusing entry %q: it would write outside the destination (through a symlink or hard link): %w", name, err)
	}
	return fmt.Errorf("writing %q: %w", name, err)
}

func typeName(t byte) string {
	switch t {
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeFifo:
		return "FIFO"
	}
	return fmt.Sprintf("type %q", t)
}

func (x *extractor) writeDir(root *os.Root, hdr *tar.Header, name string) error {
	fi, err := root.Lstat(name)
	switch {
	case err == nil && fi.IsDir():
	case err == nil:
		if err := root.Remove(name); err != nil {
			return err
		}
		fallthrough
	case errors.Is(err, fs.ErrNotExist):
		if err := makeParent(root, name); err != nil {
			return err
		}
		if err := root.Mkdir(name, 0o700); err != nil {
			return err
		}
	default:
		return err
	}
	x.dirs = append(x.dirs, dirMeta{name, hdr.FileInfo().Mode(), hdr.ModTime})
	x.sum.Dirs++
	return nil
}

func (x *extractor) writeFile(root *os.Root, tr *tar.Reader, hdr *tar.Header, name string) error {
	if err := clearFor(root, name); err != nil {
		return err
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if x.buf == nil {
		x.buf = make([]byte, 1<<20)
	}
	hw := &holeWriter{f: f}
	_, err = io.CopyBuffer(hw, tr, x.buf)
	if err == nil {
		err = f.Truncate(hdr.Size)
	}
	if err == nil {
		err = f.Chmod(safeMode(hdr.FileInfo().Mode()))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Chtimes(name, hdr.ModTime, hdr.ModTime)
	}
	x.sum.Files++
	x.sum.Bytes += hw.written
	return err
}

// writeLink makes a hard link to an earlier entry, which must lie inside
// the copied tree like the link itself.
func (x *extractor) writeLink(root *os.Root, hdr *tar.Header, name string) error {
	target, err := x.inTop(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hard link to %q: %w", hdr.Linkname, err)
	}
	if target == "." {
		return fmt.Errorf("refusing hard link to the copied directory itself")
	}
	if err := clearFor(root, name); err != nil {
		return err
	}
	x.sum.Links++
	return root.Link(target, name)
}

// clearFor makes room for a non-directory entry: its parent directories
// exist and whatever non-directory was at name is gone (a symlink there
// is removed, never followed).
func clearFor(root *os.Root, name string) error {
	if err := makeParent(root, name); err != nil {
		return err
	}
	fi, err := root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.IsDir():
		return fmt.Errorf("a directory is in the way")
	}
	return root.Remove(name)
}

func makeParent(root *os.Root, name string) error {
	if dir := path.Dir(name); dir != "." {
		return root.MkdirAll(dir, 0o755)
	}
	return nil
}
