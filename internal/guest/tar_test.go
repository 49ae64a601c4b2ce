package guest

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWriteTarHeaders(t *testing.T) {
	src := makeTree(t)
	var buf bytes.Buffer
	if err := WriteTar(&buf, src, "app"); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	got := map[string]string{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, tr)
		if n != hdr.Size {
			t.Errorf("%s: %d bytes, header says %d", hdr.Name, n, hdr.Size)
		}
		got[hdr.Name] = hdr.FileInfo().Mode().String() + " " + hdr.Linkname + " " + hdr.Uname
	}
	want := map[string]string{
		"app/big.img":   "-rw-r--r--  root",
		"app/bin/":      "drwxr-x---  root",
		"app/bin/tool":  "-rwxr-xr-x  root",
		"app/dangling":  "Lrwxrwxrwx /nonexistent/target root",
		"app/empty":     "-rw-r--r--  root",
		"app/emptydir/": "drwx------  root",
		"app/link":      "Lrwxrwxrwx bin/tool root",
		"app/secret":    "-rw-------  root",
		"app/setuid":    "urwxr-xr-x  root",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("archive entries (-want +got):\n%s", diff)
	}
}

func TestWriteTarSingleFileAndSymlink(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("hi"), 0o600)
	os.Symlink("f", filepath.Join(dir, "l"))
	for src, wantType := range map[string]byte{"f": tar.TypeReg, "l": tar.TypeSymlink} {
		var buf bytes.Buffer
		if err := WriteTar(&buf, filepath.Join(dir, src), "renamed"); err != nil {
			t.Fatal(err)
		}
		hdr, err := tar.NewReader(&buf).Next()
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name != "renamed" || hdr.Typeflag != wantType {
			t.Errorf("%s: entry %q type %c", src, hdr.Name, hdr.Typeflag)
		}
	}
}
