package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"banger/internal/archive"
)

// WriteTar streams src as a tar archive to w. A directory's contents are
// stored under name (its own entry is left out, so extracting never changes
// the destination directory's mode); a file, symlink or other single entry is
// stored as name. Modes (including setuid and sticky bits), symlink targets,
// and modification times are kept; owners are recorded as root, so the guest
// gets root-owned files however the host user is numbered. Symlinks are
// stored as links, never followed; files with holes travel without them.
// name "." puts a directory's contents at the archive's top. It is
// archive.Write with OmitTopDir.
func WriteTar(w io.Writer, src, name string) error {
	return archive.Write(w, src, name, archive.WriteOptions{OmitTopDir: true})
}

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
