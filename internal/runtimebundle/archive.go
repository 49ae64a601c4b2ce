package runtimebundle

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/gzip"
)

// Package turns the bundle in dir into a tar.gz archive at archive and
// returns its manifest entry (url file://archive). The archive's
// bundle.json records the sha256 of every file; dir itself is not changed.
// The archive is written beside its final name and renamed into place.
func Package(ctx context.Context, dir, archive, name string) (Artifact, error) {
	b, err := Load(dir)
	if err != nil {
		return Artifact{}, err
	}
	for role, p := range b.Paths() {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			return Artifact{}, fmt.Errorf("packaging runtime bundle: %s: %w", role, err)
		}
	}
	if b.Files, err = Checksums(dir); err != nil {
		return Artifact{}, err
	}
	desc, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return Artifact{}, err
	}
	archive, err = filepath.Abs(archive)
	if err != nil {
		return Artifact{}, err
	}
	if err := os.MkdirAll(filepath.Dir(archive), 0o755); err != nil {
		return Artifact{}, fmt.Errorf("packaging runtime bundle: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(archive), "."+filepath.Base(archive)+".tmp-")
	if err != nil {
		return Artifact{}, fmt.Errorf("packaging runtime bundle: %w", err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(tmp, h)}
	if err := writeArchive(ctx, cw, dir, b, append(desc, '\n')); err != nil {
		tmp.Close()
		return Artifact{}, fmt.Errorf("packaging runtime bundle %s: %w", dir, err)
	}
	if err := tmp.Close(); err != nil {
		return Artifact{}, err
	}
	if err := os.Rename(tmp.Name(), archive); err != nil {
		return Artifact{}, fmt.Errorf("packaging runtime bundle: %w", err)
	}
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(archive), ".tar.gz")
	}
	return Artifact{Name: name, URL: "file://" + archive, SHA256: hex.EncodeToString(h.Sum(nil)), Size: cw.n}, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func writeArchive(ctx context.Context, w io.Writer, dir string, b Bundle, desc []byte) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: BundleFile, Mode: 0o644, Size: int64(len(desc)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return err
	}
	if _, err := tw.Write(desc); err != nil {
		return err
	}
	names := make([]string, 0, len(b.Files))
	for n := range b.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := addFile(tw, filepath.Join(dir, n), n); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

func addFile(tw *tar.Writer, path, name string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	h := &tar.Header{Name: name, Mode: int64(st.Mode().Perm()), Size: st.Size(), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("archiving %s: %w", name, err)
	}
	return nil
}

// unpack extracts a bundle archive into dir, which must exist and be
// empty. Only regular files and directories inside dir are accepted; runs
// of zero bytes are left as holes so sparse root filesystems stay sparse.
func unpack(ctx context.Context, r io.Reader, dir string) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("reading bundle archive: %w", err)
	}
	tr := tar.NewReader(zr)
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading bundle archive: %w", err)
		}
		if err := checkRelPath(strings.TrimSuffix(h.Name, "/")); err != nil {
			return fmt.Errorf("bundle archive entry: %w", err)
		}
		target := filepath.Join(dir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			if err := writeSparse(target, os.FileMode(h.Mode).Perm(), tr, h.Size, buf); err != nil {
				return fmt.Errorf("unpacking %s: %w", h.Name, err)
			}
		default:
			return fmt.Errorf("bundle archive entry %s: type %q is not allowed (only files and directories)", h.Name, h.Typeflag)
		}
	}
}

func writeSparse(path string, mode os.FileMode, r io.Reader, size int64, buf []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	var off int64
	for off < size {
		n, rerr := io.ReadFull(r, buf[:min(int64(len(buf)), size-off)])
		if n > 0 && !allZero(buf[:n]) {
			if _, err := f.WriteAt(buf[:n], off); err != nil {
				f.Close()
				return err
			}
		}
		off += int64(n)
		if rerr != nil {
			f.Close()
			return rerr
		}
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func allZero(b []byte) bool {
	return len(b) == 0 || (b[0] == 0 && bytes.Equal(b[:len(b)-1], b[1:]))
}

// ErrChecksum marks an archive whose sha256 differs from its manifest entry.
var ErrChecksum = errors.New("checksum mismatch")
