package testutil

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// Tree describes every entry under root, keyed by its path relative to
// root: "dir", "file <sha256>" or "link -> <target>" (symlinks are not
// followed). Fuzz targets of archive extraction compare it before and
// after, to prove that nothing outside the destination changed.
func Tree(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(root, p)
		if errors.Is(err, fs.ErrPermission) {
			// An extraction may leave a directory without read or search
			// permission (the test does not run as root): what it holds
			// cannot be listed, which is recorded instead.
			out[rel] += " (unreadable)"
			return nil
		}
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "link -> " + target
		case d.IsDir():
			out[rel] = "dir"
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			switch {
			case errors.Is(err, fs.ErrPermission):
				out[rel] = "file (unreadable)"
			case err != nil:
				return err
			default:
				sum := sha256.Sum256(data)
				out[rel] = "file " + hex.EncodeToString(sum[:8])
			}
		default:
			out[rel] = "special " + d.Type().String()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("listing %s: %v", root, err)
	}
	return out
}

// RemoveTree removes root even where an extraction left directories
// without write or search permission (which os.RemoveAll cannot enter
// when the test does not run as root).
func RemoveTree(t testing.TB, root string) {
	t.Helper()
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	if err := os.RemoveAll(root); err != nil {
		t.Fatalf("removing %s: %v", root, err)
	}
}

// FileSHA256 is the hex SHA-256 of the file at path, streamed.
func FileSHA256(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
