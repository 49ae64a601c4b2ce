package runtimebundle

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/gzip"

	"banger/internal/testutil"
)

// FuzzLoadManifest reads arbitrary runtime-bundle.toml files. A manifest
// that loads renders back to TOML that loads to the same artifacts, and an
// artifact that validates has a url and a 64-digit sha256.
func FuzzLoadManifest(f *testing.F) {
	for _, s := range []string{
		"",
		"[[artifact]]\nname = \"x86_64\"\nurl = \"https://example.invalid/b.tar.gz\"\nsha256 = \"" + strings.Repeat("ab", 32) + "\"\nsize = 10\n",
		"[[artifact]]\nname = \"a\"\n[[artifact]]\nname = \"b\"\nurl = \"file:///tmp/x\"\n",
		"[[artifact]]\nurl = \"../b.tar.gz\"\nsha256 = \"" + strings.Repeat("G", 64) + "\"\n",
		"artifact = 1\n",
		"[artifact]\nname = 1\n",
		"[[artifact]]\nsize = -1\n",
	} {
		f.Add([]byte(s))
	}
	path := filepath.Join(f.TempDir(), ManifestFile)
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := LoadManifest(path)
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("LoadManifest error %q does not name the file", err)
			}
			return
		}
		for _, a := range m.Artifacts {
			if a.Validate() == nil && (a.URL == "" || len(a.SHA256) != 64) {
				t.Fatalf("artifact %+v validates", a)
			}
			if a.Validate() == nil {
				_, _ = locate(a.URL, filepath.Dir(path))
			}
		}
		out, err := m.Render()
		if err != nil {
			t.Fatalf("rendering a manifest that loaded: %v", err)
		}
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		back, err := LoadManifest(path)
		if err != nil {
			t.Fatalf("a rendered manifest does not load: %v\n%s", err, out)
		}
		if diff := cmp.Diff(m.Artifacts, back.Artifacts); len(m.Artifacts) > 0 && diff != "" {
			t.Fatalf("manifest changed through Render (-loaded +rendered):\n%s", diff)
		}
	})
}

// FuzzLoadBundle reads arbitrary bundle.json files. A bundle that loads
// names only paths inside its directory, so nothing banger reads or runs
// from a bundle lies elsewhere.
func FuzzLoadBundle(f *testing.F) {
	for _, s := range []string{
		`{"version":1,"kernel":"vmlinuz","initrd":"initrd.img","rootfs":"rootfs.ext4"}`,
		`{"version":1,"vmm":"bin/banger-vmm-qemu","kernel":"boot/vmlinuz","initrd":"boot/initrd.img","rootfs":"rootfs.ext4","helpers":{"x":"bin/x"},"files":{"boot/vmlinuz":"00"}}`,
		`{"version":1,"kernel":"../vmlinuz","initrd":"/boot/initrd","rootfs":"a/../../r"}`,
		`{"version":1,"kernel":"a\\b","initrd":".","rootfs":"./r","files":{"..":"x"}}`,
		`{"version":2}`,
		`{"version":1,"kernel":"k","initrd":"i","rootfs":"r","helpers":{"h":""}}`,
		`[]`,
		`{"version":1e400}`,
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, BundleFile), data, 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := Load(dir)
		if err != nil {
			if !strings.Contains(err.Error(), dir) {
				t.Fatalf("Load error %q does not name the bundle", err)
			}
			return
		}
		paths := b.Paths()
		for p := range b.Files {
			paths["file "+p] = p
		}
		for role, p := range paths {
			if p == "" {
				continue
			}
			abs := Abs(dir, p)
			if !strings.HasPrefix(abs, dir+"/") {
				t.Fatalf("bundle %s path %q resolves to %s, outside the bundle %s", role, p, abs, dir)
			}
		}
		if _, err := json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzUnpack unpacks arbitrary tar streams (gzipped here, so the fuzzer
// works on the tar itself) as `banger runtime install` does, and checks
// that only files and directories appear, all inside the staging
// directory, and that nothing beside it changed.
func FuzzUnpack(f *testing.F) {
	type ent struct {
		name, link, body string
		typ              byte
	}
	for _, s := range [][]ent{
		{{name: "bundle.json", body: "{}"}, {name: "boot/", typ: tar.TypeDir}, {name: "boot/vmlinuz", body: "k"}},
		{{name: "../x", body: "evil"}},
		{{name: "/abs", body: "evil"}},
		{{name: "a/../../x", body: "evil"}},
		{{name: "l", link: "../outside", typ: tar.TypeSymlink}, {name: "l/x", body: "evil"}},
		{{name: "h", link: "../outside/keep", typ: tar.TypeLink}},
		{{name: "./", typ: tar.TypeDir}, {name: "./f", body: "f"}},
		{{name: "f", body: "1"}, {name: "f", body: "2"}},
		{{name: "d", body: "file"}, {name: "d/x", body: "below a file"}},
		{{name: `a\..\..\x`, body: "evil"}},
	} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range s {
			typ := e.typ
			if typ == 0 {
				typ = tar.TypeReg
			}
			h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: typ, Mode: 0o644}
			if typ == tar.TypeReg {
				h.Size = int64(len(e.body))
			}
			_ = tw.WriteHeader(h)
			_, _ = tw.Write([]byte(e.body))
		}
		_ = tw.Close()
		f.Add(buf.Bytes())
	}
	base := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		sandbox, err := os.MkdirTemp(base, "x")
		if err != nil {
			t.Fatal(err)
		}
		defer testutil.RemoveTree(t, sandbox)
		outside := filepath.Join(sandbox, "outside")
		stage := filepath.Join(sandbox, "stage")
		for _, d := range []string{outside, stage} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(outside, "keep"), []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		_, _ = zw.Write(data)
		_ = zw.Close()
		before := testutil.Tree(t, sandbox)
		_ = unpack(context.Background(), &gz, stage)
		after := testutil.Tree(t, sandbox)
		for rel, what := range after {
			if strings.HasPrefix(rel, "stage/") {
				if !strings.HasPrefix(what, "file ") && !strings.HasPrefix(what, "dir") {
					t.Fatalf("unpacking wrote %s as %s; bundles hold only files and directories", rel, what)
				}
				continue
			}
			if before[rel] != what {
				t.Fatalf("unpacking into %s changed %s beside it: %q, was %q", stage, rel, what, before[rel])
			}
		}
	})
}
