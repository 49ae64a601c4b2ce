package guest

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
)

// WriteTar streams src as a tar archive to w. A directory's contents are
// stored under name (its own entry is left out, so extracting never changes
// the destination directory's mode); a file, symlink or other single entry is
// stored as name. Modes (including setuid and sticky bits), symlink targets,
// and modification times are kept; owners are recorded as root, so the guest
// gets root-owned files however the host user is numbered. Symlinks are
// stored as links, never followed. name "." puts a directory's contents at
// the archive's top.
func WriteTar(w io.Writer, src, name string) error {
	tw := tar.NewWriter(w)
	fi, err := os.Lstat(src)
	if err != nil {
		return fmt.Errorf("archiving %s: %w", src, err)
	}
	if !fi.IsDir() {
		if err := addEntry(tw, src, name, fi); err != nil {
			return err
		}
		return tw.Close()
	}
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return addEntry(tw, p, path.Join(name, filepath.ToSlash(rel)), info)
	})
	if err != nil {
		return fmt.Errorf("archiving %s: %w", src, err)
	}
	return tw.Close()
}

func addEntry(tw *tar.Writer, p, name string, fi fs.FileInfo) error {
	var link string
	if fi.Mode()&fs.ModeSymlink != 0 {
		var err error
		if link, err = os.Readlink(p); err != nil {
			return fmt.Errorf("archiving %s: %w", p, err)
		}
	}
	hdr, err := tar.FileInfoHeader(rootOwned{fi}, link)
	if err != nil {
		return fmt.Errorf("archiving %s: %w", p, err)
	}
	hdr.Name = name
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "root", "root"
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("archiving %s: %w", p, err)
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("archiving %s: %w", p, err)
	}
	defer f.Close()
	// Copy exactly the size in the header: a file that grows while it is
	// archived must not corrupt the stream.
	if _, err := io.CopyN(tw, f, hdr.Size); err != nil {
		return fmt.Errorf("archiving %s: %w", p, err)
	}
	return nil
}

// rootOwned hides the host's owner names from tar.FileInfoHeader, which
// would otherwise look them up in the host's user database.
type rootOwned struct{ fs.FileInfo }

func (rootOwned) Uname() (string, error) { return "root", nil }
func (rootOwned) Gname() (string, error) { return "root", nil }

// Upload copies the host path src to dst in the guest as one streamed tar
// archive unpacked by the guest's `tar -x -C`. A directory's contents land in
// dst (made with its parents when missing); a file, or a symlink, becomes dst
// itself. Files arrive owned by root with their host modes.
func (c *Client) Upload(ctx context.Context, src, dst string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return fmt.Errorf("uploading %s: %w", src, err)
	}
	dir, name := dst, "."
	if !fi.IsDir() {
		dir, name = path.Dir(dst), path.Base(dst)
	}
	line := UntarCommand(dir)
	s, err := c.conn.NewSession()
	if err != nil {
		return fmt.Errorf("uploading %s: opening ssh session: %w", src, err)
	}
	defer s.Close()
	stdin, err := s.StdinPipe()
	if err != nil {
		return fmt.Errorf("uploading %s: %w", src, err)
	}
	stderr := &tailBuffer{max: 4096}
	s.Stderr = stderr
	if err := s.Start(line); err != nil {
		return fmt.Errorf("uploading %s: starting %q: %w", src, line, err)
	}
	tarErr := make(chan error, 1)
	go func() {
		err := WriteTar(stdin, src, name)
		tarErr <- errors.Join(err, stdin.Close())
	}()
	err = wait(ctx, s, line)
	var ee *ExitError
	if errors.As(err, &ee) {
		ee.Stderr = stderr.String()
	}
	s.Close() // unblocks a writer the guest stopped reading from
	werr := <-tarErr
	if err != nil {
		return fmt.Errorf("uploading %s to %s:%s: %w", src, c.addr, dst, err)
	}
	if werr != nil {
		return fmt.Errorf("uploading %s to %s:%s: %w", src, c.addr, dst, werr)
	}
	return nil
}

// UntarCommand is the guest command line Upload runs to unpack into dir.
func UntarCommand(dir string) string {
	return "mkdir -p -- " + Quote(dir) + " && tar -x -C " + Quote(dir)
}
