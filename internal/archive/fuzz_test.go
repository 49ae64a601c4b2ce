package archive

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"banger/internal/testutil"
)

// fuzzTar builds a seed archive from entries without a *testing.T.
func fuzzTar(entries ...entry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ, mode := e.typ, e.mode
		if typ == 0 {
			typ = tar.TypeReg
		}
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: typ, Mode: mode}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		_ = tw.WriteHeader(hdr)
		if typ == tar.TypeReg {
			_, _ = tw.Write([]byte(e.body))
		}
	}
	_ = tw.Close()
	return buf.Bytes()
}

// FuzzExtract unpacks arbitrary tar streams, as a guest could send them to
// `banger vm cp`, into a real directory beside a sentinel directory, and
// checks that nothing outside the destination appeared or changed,
// whatever the names, symlinks and hard links in the stream.
func FuzzExtract(f *testing.F) {
	for _, s := range [][]entry{
		{{name: "f", body: "hello"}},
		{dir("d/"), {name: "d/a", body: "a"}, dir("d/sub/"), {name: "d/sub/b", body: "b"}},
		{dir("./"), {name: "./x", body: "x"}},
		{dir("d/"), {name: "d/../../x", body: "evil"}},
		{{name: "/etc/x", body: "evil"}},
		{dir("d/"), {name: "d/a", link: "../outside", typ: tar.TypeSymlink}, {name: "d/a/x", body: "evil"}},
		{dir("d/"), {name: "d/a", link: "/", typ: tar.TypeSymlink}, dir("d/a/tmp/")},
		{dir("d/"), {name: "d/a", link: "..", typ: tar.TypeSymlink}, {name: "d/l", link: "d/a/outside/keep", typ: tar.TypeLink}},
		{dir("d/"), {name: "d/f", body: "x"}, {name: "d/l", link: "d/f", typ: tar.TypeLink}},
		{dir("d/"), {name: "d/s", link: "x", typ: tar.TypeSymlink}, {name: "d/s", body: "replaced"}},
		{dir("d/"), {name: "d/fifo", typ: tar.TypeFifo}, {name: "d/dev", typ: tar.TypeChar}},
		{{name: "d", typ: tar.TypeDir, mode: 0o000}, {name: "d/x", body: "x"}},
		{{name: "s", link: "/etc/passwd", typ: tar.TypeSymlink}},
	} {
		for where := byte(0); where < 3; where++ {
			f.Add(fuzzTar(s...), where)
		}
	}
	base := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte, where byte) {
		sandbox, err := os.MkdirTemp(base, "x")
		if err != nil {
			t.Fatal(err)
		}
		defer testutil.RemoveTree(t, sandbox)
		outside := filepath.Join(sandbox, "outside")
		if err := os.Mkdir(outside, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(outside, "keep"), []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
		// The destination: an existing directory, a new name in one, or an
		// existing file.
		var dst, owned string
		switch where % 3 {
		case 0:
			owned = filepath.Join(sandbox, "dst")
			dst = owned + "/"
			err = os.Mkdir(owned, 0o755)
		case 1:
			owned = filepath.Join(sandbox, "new")
			dst = owned
		case 2:
			owned = filepath.Join(sandbox, "file")
			dst = owned
			err = os.WriteFile(owned, []byte("old"), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
		before := testutil.Tree(t, outside)
		_, _ = Extract(bytes.NewReader(data), dst)
		if diff := cmp.Diff(before, testutil.Tree(t, outside)); diff != "" {
			t.Fatalf("extracting into %s changed a directory beside it (-before +after):\n%s", dst, diff)
		}
		for rel := range testutil.Tree(t, sandbox) {
			p := filepath.Join(sandbox, rel)
			if p != sandbox && p != outside && !strings.HasPrefix(p, outside+"/") && p != owned && !strings.HasPrefix(p, owned+"/") {
				t.Fatalf("extracting into %s wrote %s, outside the destination", dst, p)
			}
		}
		if _, err := os.Lstat("/x"); err == nil {
			t.Fatal("/x exists")
		}
	})
}
