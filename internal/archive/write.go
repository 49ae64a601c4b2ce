package archive

import (
	"archive/tar"
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"
	"time"
)

// WriteOptions tune Write.
type WriteOptions struct {
	// OmitTopDir leaves a directory's own entry out and stores only its
	// contents under name, so extracting never changes the mode of a
	// destination directory that already exists. name "." implies it.
	OmitTopDir bool
	// NoSparse stores every file densely, holes as zeros.
	NoSparse bool
}

// Write streams the host path src as a tar archive to w. src may be a
// file, a symlink (stored as a link, never followed) or a directory tree;
// its top entry is named name ("." stores a directory's contents at the
// archive's top, as `tar -C src .` does), everything below it name/….
//
// Modes (setuid, setgid and sticky included), symlink targets and
// modification times are kept; owners are recorded as root (0:0), so files
// arrive owned by root in the guest, whoever owns them on the host. Files
// linked more than once inside the tree are stored once and then as hard
// links. A file with holes is stored in the PAX sparse format 1.0, which
// GNU tar and Go's archive/tar read: only its data travels. Sockets are
// skipped; devices and FIFOs are stored as such.
func Write(w io.Writer, src, name string, opts WriteOptions) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	aw := &archiver{w: bw, tw: tar.NewWriter(bw), links: map[fileID]string{}, sparse: !opts.NoSparse}
	fi, err := os.Lstat(src)
	if err != nil {
		return fmt.Errorf("archiving %s: %w", src, err)
	}
	name = path.Clean(filepath.ToSlash(name))
	if !fi.IsDir() {
		if name == "." {
			return fmt.Errorf("archiving %s: a file needs a name in the archive, not %q", src, name)
		}
		err = aw.add(src, name, fi)
	} else {
		err = aw.addTree(src, name, opts.OmitTopDir || name == ".")
	}
	if err == nil {
		err = aw.tw.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return fmt.Errorf("archiving %s: %w", src, err)
	}
	return nil
}

type fileID struct{ dev, ino uint64 }

type archiver struct {
	w      io.Writer // what tw writes to, for sparse entries written by hand
	tw     *tar.Writer
	links  map[fileID]string
	sparse bool
	buf    []byte
}

func (a *archiver) addTree(src, name string, omitTop bool) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if rel == "." && omitTop {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return a.add(p, path.Join(name, filepath.ToSlash(rel)), info)
	})
}

// add stores one entry.
func (a *archiver) add(p, name string, fi fs.FileInfo) error {
	if fi.Mode()&fs.ModeSocket != 0 {
		return nil // a socket cannot be archived; tar skips them too
	}
	var link string
	if fi.Mode()&fs.ModeSymlink != 0 {
		var err error
		if link, err = os.Readlink(p); err != nil {
			return err
		}
	}
	hdr, err := tar.FileInfoHeader(rootOwned{fi}, link)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	hdr.Name = name
	// Whole seconds, as ustar stores them (Go would round; tar truncates).
	hdr.ModTime = hdr.ModTime.Truncate(time.Second)
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "root", "root"
	if fi.Mode().IsRegular() {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			id := fileID{uint64(st.Dev), st.Ino}
			if first, seen := a.links[id]; seen {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
				return a.tw.WriteHeader(hdr)
			}
			a.links[id] = name
		}
		return a.addFile(p, hdr)
	}
	return a.tw.WriteHeader(hdr)
}

// addFile stores a regular file's header and data, sparse when it has
// holes worth skipping.
func (a *archiver) addFile(p string, hdr *tar.Header) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if a.sparse {
		regions, err := dataRegions(f, hdr.Size)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if worthSparse(regions, hdr.Size) {
			return a.writeSparse(f, hdr, regions)
		}
	}
	if err := a.tw.WriteHeader(hdr); err != nil {
		return err
	}
	if a.buf == nil {
		a.buf = make([]byte, 256<<10)
	}
	// Copy exactly the size in the header: a file that grows while it is
	// archived must not corrupt the stream. (Reading at offsets: looking
	// for holes moved the file's offset.)
	n, err := io.CopyBuffer(a.tw, io.NewSectionReader(f, 0, hdr.Size), a.buf)
	if err == nil && n < hdr.Size {
		err = fmt.Errorf("%s shrank while it was archived (%d of %d bytes)", p, n, hdr.Size)
	}
	return err
}

// rootOwned hides the host's owner names from tar.FileInfoHeader, which
// would otherwise look them up in the host's user database.
type rootOwned struct{ fs.FileInfo }

func (rootOwned) Uname() (string, error) { return "root", nil }
func (rootOwned) Gname() (string, error) { return "root", nil }
