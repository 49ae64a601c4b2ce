package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Summary says what Extract wrote.
type Summary struct {
	// Path is where the archive's top entry landed.
	Path string
	// Files, Dirs, Symlinks and Links count the entries written.
	Files, Dirs, Symlinks, Links int
	// Bytes is the data written to files; zero blocks left as holes are
	// not counted.
	Bytes int64
	// Skipped names entries that were not written, with the reason:
	// devices, FIFOs and other special files.
	Skipped []string
}

// Extract unpacks a tar stream (as `tar -c -C PARENT NAME` or
// `tar -c -C DIR .` writes it in the guest) to the host path dst, naming
// the result as docker cp does (it reads r to its end, up to 1 MiB past
// the end of the archive):
//
//   - dst is an existing directory: the top entry lands inside it,
//     dst/NAME (a top entry "." puts the contents straight into dst);
//   - dst does not exist: the top entry becomes dst (its parent must
//     exist; a dst ending in "/" must be for a directory);
//   - dst is an existing file: a file replaces it, a directory is refused.
//
// Nothing is ever written outside the top entry's destination, whatever
// the stream holds: names that are absolute or contain "..", symlinks
// leading out and then written through, and hard links to files outside
// are refused with an error (the extraction stops there). Writes go
// through os.Root opened at the destination, so even a tree changed
// concurrently cannot redirect them. Devices, FIFOs and sockets are
// skipped and listed in the summary.
//
// Files keep their modes without setuid and setgid (a file from a guest
// never becomes a set-id program on the host); directories keep theirs,
// sticky bit included, applied after their contents are written; files
// and directories keep their modification times (symlinks get the time
// of extraction). Owners are not restored: everything belongs to the
// user extracting. Runs of zeros of 4 KiB and more become holes, so a
// sparse file stays sparse.
func Extract(r io.Reader, dst string) (Summary, error) {
	tr := tar.NewReader(r)
	hdr, err := tr.Next()
	if err == io.EOF {
		return Summary{}, fmt.Errorf("extracting into %s: the archive is empty", dst)
	}
	if err != nil {
		return Summary{}, fmt.Errorf("extracting into %s: reading the archive: %w", dst, err)
	}
	top, err := entryPath(hdr.Name)
	if err != nil {
		return Summary{}, fmt.Errorf("extracting into %s: %w", dst, err)
	}
	if strings.Contains(top, "/") {
		return Summary{}, fmt.Errorf("extracting into %s: the archive's first entry %q is not a single name (want the copied file or directory itself)", dst, hdr.Name)
	}
	isDir := hdr.Typeflag == tar.TypeDir || top == "."
	t, err := resolveTarget(dst, top, isDir)
	if err != nil {
		return Summary{}, fmt.Errorf("extracting into %s: %w", dst, err)
	}
	x := &extractor{top: top, sum: Summary{Path: t.path}}
	if isDir {
		err = x.extractTree(tr, hdr, t)
	} else {
		err = x.extractOne(tr, hdr, t)
	}
	if err != nil {
		return x.sum, fmt.Errorf("extracting into %s: %w", dst, err)
	}
	// GNU tar pads its output to whole records after the end-of-archive
	// blocks; read them, so the writer is not left blocked on a full pipe.
	_, _ = io.CopyN(io.Discard, r, maxTrailer)
	return x.sum, nil
}

// maxTrailer bounds what Extract reads after the end of the archive.
const maxTrailer = 1 << 20

// target is where the top entry goes: the directory root (opened as an
// os.Root) and the name inside it ("" when the top entry is root itself).
type target struct {
	root    string
	name    string
	path    string
	existed bool // a directory top entry lands on an existing directory
}

func resolveTarget(dst, top string, isDir bool) (target, error) {
	wantDir := strings.HasSuffix(dst, "/") || strings.HasSuffix(dst, "/.")
	fi, err := os.Stat(dst)
	switch {
	case err == nil && fi.IsDir():
		real, err := filepath.EvalSymlinks(dst)
		if err != nil {
			return target{}, err
		}
		if top == "." {
			return target{root: real, path: real, existed: true}, nil
		}
		return target{root: real, name: top, path: filepath.Join(real, top)}, nil
	case err == nil:
		if isDir || wantDir {
			return target{}, fmt.Errorf("%s is a file; a directory cannot be copied onto it", dst)
		}
		real, err := filepath.EvalSymlinks(dst)
		if err != nil {
			return target{}, err
		}
		return target{root: filepath.Dir(real), name: filepath.Base(real), path: real}, nil
	case errors.Is(err, fs.ErrNotExist):
		if wantDir && !isDir {
			return target{}, fmt.Errorf("directory %s does not exist (create it first, or leave out the trailing /)", dst)
		}
		clean := filepath.Clean(dst)
		parent := filepath.Dir(clean)
		if st, err := os.Stat(parent); err != nil || !st.IsDir() {
			return target{}, fmt.Errorf("the parent directory %s does not exist", parent)
		}
		return target{root: parent, name: filepath.Base(clean), path: clean}, nil
	default:
		return target{}, err
	}
}

// entryPath cleans an archive name to a relative slash path ("." for the
// top of a contents archive), refusing absolute names and ".." anywhere.
func entryPath(name string) (string, error) {
	if name == "" {
		return "", errors.New("an entry has an empty name")
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("refusing entry %q: an absolute name would write outside the destination", name)
	}
	var parts []string
	for _, p := range strings.Split(name, "/") {
		switch p {
		case "", ".":
		case "..":
			return "", fmt.Errorf("refusing entry %q: a \"..\" in a name would write outside the destination", name)
		default:
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return ".", nil
	}
	return strings.Join(parts, "/"), nil
}

type extractor struct {
	top  string
	sum  Summary
	dirs []dirMeta // applied last, deepest first
	buf  []byte
}

type dirMeta struct {
	name  string
	mode  fs.FileMode
	mtime time.Time
}

// extractOne writes a single non-directory top entry as t.name in t.root.
func (x *extractor) extractOne(tr *tar.Reader, hdr *tar.Header, t target) error {
	root, err := os.OpenRoot(t.root)
	if err != nil {
		return err
	}
	defer root.Close()
	if hdr.Typeflag == tar.TypeLink {
		return fmt.Errorf("refusing entry %q: a hard link cannot be the copied file itself", hdr.Name)
	}
	if err := x.write(root, tr, hdr, t.name); err != nil {
		return err
	}
	if next, err := tr.Next(); err != io.EOF {
		if err != nil {
			return fmt.Errorf("reading the archive: %w", err)
		}
		return fmt.Errorf("refusing entry %q: the archive holds a single file %q, nothing may follow it", next.Name, hdr.Name)
	}
	return nil
}

// extractTree writes a directory top entry and everything below it, with
// an os.Root opened at the directory itself.
func (x *extractor) extractTree(tr *tar.Reader, hdr *tar.Header, t target) error {
	root, err := openTop(t)
	if err != nil {
		return err
	}
	defer root.Close()
	x.sum.Dirs++
	if !(t.existed && x.top == ".") {
		x.dirs = append(x.dirs, dirMeta{".", hdr.FileInfo().Mode(), hdr.ModTime})
	}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the archive: %w", err)
		}
		rel, err := x.inTop(hdr.Name)
		if err != nil {
			return err
		}
		if rel == "." {
			return fmt.Errorf("refusing entry %q: the top directory appears twice", hdr.Name)
		}
		if err := x.write(root, tr, hdr, rel); err != nil {
			return err
		}
	}
	return x.finishDirs(root)
}

// openTop opens the top directory as an os.Root, making it first when
// needed; it is opened through its parent's root, so a symlink put in its
// place cannot lead elsewhere.
func openTop(t target) (*os.Root, error) {
	if t.name == "" {
		return os.OpenRoot(t.root)
	}
	parent, err := os.OpenRoot(t.root)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	fi, err := parent.Lstat(t.name)
	switch {
	case err == nil && !fi.IsDir():
		return nil, fmt.Errorf("%s exists and is not a directory; a directory cannot replace it", t.path)
	case errors.Is(err, fs.ErrNotExist):
		if err := parent.Mkdir(t.name, 0o700); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	}
	return parent.OpenRoot(t.name)
}

// inTop returns an entry's path relative to the top directory, refusing
// entries outside it.
func (x *extractor) inTop(name string) (string, error) {
	p, err := entryPath(name)
	if err != nil {
		return "", err
	}
	if x.top == "." {
		return p, nil
	}
	if p == x.top {
		return ".", nil
	}
	rel, ok := strings.CutPrefix(p, x.top+"/")
	if !ok {
		return "", fmt.Errorf("refusing entry %q: it is outside the copied directory %q", name, x.top)
	}
	return rel, nil
}

// finishDirs applies directory modes and times, deepest first, once their
// contents are written.
func (x *extractor) finishDirs(root *os.Root) error {
	slices.SortStableFunc(x.dirs, func(a, b dirMeta) int { return strings.Count(b.name, "/") - strings.Count(a.name, "/") })
	for _, d := range x.dirs {
		if err := root.Chmod(d.name, safeMode(d.mode)); err != nil {
			return err
		}
		if err := root.Chtimes(d.name, d.mtime, d.mtime); err != nil {
			return err
		}
	}
	return nil
}

// safeMode keeps permission and sticky bits, dropping setuid and setgid.
func safeMode(m fs.FileMode) fs.FileMode { return m & (fs.ModePerm | fs.ModeSticky) }
