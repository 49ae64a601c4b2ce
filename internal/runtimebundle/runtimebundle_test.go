package runtimebundle

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/gzip"
)

// makeBundleSource writes a small bundle directory: a sparse rootfs, a
// kernel, an initrd and a VMM "binary".
func makeBundleSource(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{"boot/vmlinuz": "kernel", "boot/initrd.img": "initrd", "bin/banger-vmm-qemu": "#!vmm"}
	for p, c := range files {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(dir, "rootfs"), 0o755)
	f, _ := os.Create(filepath.Join(dir, "rootfs/rootfs.ext4"))
	f.Truncate(64 << 20)
	f.WriteAt([]byte("ext4 superblock"), 1024)
	f.Close()
	if err := Write(dir, Bundle{Version: FormatVersion, Name: "test", VMM: "bin/banger-vmm-qemu", Kernel: "boot/vmlinuz", Initrd: "boot/initrd.img", Rootfs: "rootfs/rootfs.ext4"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// packageToManifest packages src and writes a manifest naming the archive.
func packageToManifest(t *testing.T, src string) (manifest string, a Artifact) {
	t.Helper()
	out := t.TempDir()
	a, err := Package(context.Background(), src, filepath.Join(out, "bundle.tar.gz"), "")
	if err != nil {
		t.Fatal(err)
	}
	data, err := Manifest{Artifacts: []Artifact{a}}.Render()
	if err != nil {
		t.Fatal(err)
	}
	manifest = filepath.Join(out, ManifestFile)
	if err := os.WriteFile(manifest, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return manifest, a
}

func TestPackageInstallVerify(t *testing.T) {
	src := makeBundleSource(t)
	manifest, a := packageToManifest(t, src)
	if a.Name != "bundle" || !strings.HasPrefix(a.URL, "file:///") || len(a.SHA256) != 64 || a.Size == 0 {
		t.Errorf("artifact = %+v", a)
	}
	dest := filepath.Join(t.TempDir(), "lib", "banger")
	b, err := Install(context.Background(), Deps{}, InstallOptions{Manifest: manifest, Dest: dest})
	if err != nil {
		t.Fatal(err)
	}
	if b.Rootfs != "rootfs/rootfs.ext4" || len(b.Files) != 4 {
		t.Errorf("installed bundle = %+v", b)
	}
	if err := Verify(dest); err != nil {
		t.Errorf("Verify after install: %v", err)
	}
	st, _ := os.Stat(filepath.Join(dest, "rootfs/rootfs.ext4"))
	if st.Size() != 64<<20 {
		t.Errorf("rootfs size %d", st.Size())
	}
	if alloc := allocated(t, filepath.Join(dest, "rootfs/rootfs.ext4")); alloc > 1<<20 {
		t.Errorf("rootfs not sparse after install: %d bytes allocated", alloc)
	}
	// Tampering with an installed file is caught by Verify.
	os.WriteFile(filepath.Join(dest, "boot/vmlinuz"), []byte("evil"), 0o644)
	if err := Verify(dest); err == nil || !strings.Contains(err.Error(), "boot/vmlinuz") {
		t.Errorf("Verify after tampering = %v, want it to name boot/vmlinuz", err)
	}
}

func TestInstallRefusesTamperedArchive(t *testing.T) {
	src := makeBundleSource(t)
	manifest, a := packageToManifest(t, src)
	dest := filepath.Join(t.TempDir(), "runtime")
	if _, err := Install(context.Background(), Deps{}, InstallOptions{Manifest: manifest, Dest: dest}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dest)

	// Rewrite the archive with different kernel bytes, keeping the manifest.
	archive := strings.TrimPrefix(a.URL, "file://")
	os.WriteFile(filepath.Join(src, "boot/vmlinuz"), []byte("tampered"), 0o644)
	if _, err := Package(context.Background(), src, archive, ""); err != nil {
		t.Fatal(err)
	}
	_, err := Install(context.Background(), Deps{}, InstallOptions{Manifest: manifest, Dest: dest})
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "nothing was installed") {
		t.Fatalf("Install of tampered archive = %v, want a checksum mismatch", err)
	}
	if diff := cmp.Diff(before, snapshot(t, dest)); diff != "" {
		t.Errorf("existing bundle changed (-before +after):\n%s", diff)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(dest), ".runtime*")); len(leftovers) > 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
}

func TestInstallReplacesExistingBundle(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "runtime")
	m1, _ := packageToManifest(t, makeBundleSource(t))
	if _, err := Install(context.Background(), Deps{}, InstallOptions{Manifest: m1, Dest: dest}); err != nil {
		t.Fatal(err)
	}
	src2 := makeBundleSource(t)
	os.WriteFile(filepath.Join(src2, "boot/vmlinuz"), []byte("kernel v2"), 0o644)
	m2, _ := packageToManifest(t, src2)
	if _, err := Install(context.Background(), Deps{}, InstallOptions{Manifest: m2, Dest: dest}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "boot/vmlinuz")); string(b) != "kernel v2" {
		t.Errorf("kernel after reinstall = %q", b)
	}
	if err := Verify(dest); err != nil {
		t.Error(err)
	}
}

func TestUnpackRejectsEscapesAndLinks(t *testing.T) {
	for name, h := range map[string]*tar.Header{
		"dotdot":   {Name: "../evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644},
		"absolute": {Name: "/etc/evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644},
		"symlink":  {Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
	} {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		tw.WriteHeader(h)
		if h.Size > 0 {
			tw.Write([]byte("x"))
		}
		tw.Close()
		zw.Close()
		if err := unpack(context.Background(), &buf, t.TempDir()); err == nil {
			t.Errorf("%s: unpack accepted it", name)
		}
	}
}

func TestManifestArtifactAndLocate(t *testing.T) {
	m := Manifest{Artifacts: []Artifact{{Name: "a", URL: "file:///x/a.tar.gz", SHA256: strings.Repeat("ab", 32)}}}
	data, err := m.Render()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), ManifestFile)
	os.WriteFile(p, data, 0o644)
	back, err := LoadManifest(p)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, back); diff != "" {
		t.Errorf("manifest round trip (-want +got):\n%s", diff)
	}
	if _, err := (Manifest{}).Artifact(""); err == nil || !strings.Contains(err.Error(), "make runtime-bundle") {
		t.Errorf("empty manifest: %v, want the local-first hint", err)
	}
	if err := (Artifact{Name: "a", SHA256: "zz"}).Validate(); err == nil || !strings.Contains(err.Error(), "no url") {
		t.Errorf("Validate = %v", err)
	}
	for raw, want := range map[string]location{
		"file:///srv/a.tar.gz":  {Path: "/srv/a.tar.gz"},
		"https://example/a.tgz": {HTTPS: "https://example/a.tgz"},
		"/abs/a.tar.gz":         {Path: "/abs/a.tar.gz"},
		"build/a.tar.gz":        {Path: "/m/build/a.tar.gz"},
	} {
		got, err := locate(raw, "/m")
		if err != nil || got != want {
			t.Errorf("locate(%q) = %+v, %v; want %+v", raw, got, err, want)
		}
	}
	for _, bad := range []string{"http://example/a.tgz", "ftp://x/a", "file://host/a"} {
		if _, err := locate(bad, "/m"); err == nil {
			t.Errorf("locate(%q) accepted", bad)
		}
	}
}

func TestCheckedInManifestHasNoURLs(t *testing.T) {
	m, err := LoadManifest(filepath.Join("..", "..", ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range m.Artifacts {
		if a.URL != "" {
			t.Errorf("checked-in %s names url %q; keep URLs in a local copy", ManifestFile, a.URL)
		}
	}
}

func TestResolve(t *testing.T) {
	root := t.TempDir()
	checkout := filepath.Join(root, "src")
	os.MkdirAll(filepath.Join(checkout, "internal", "x"), 0o755)
	os.WriteFile(filepath.Join(checkout, "go.mod"), []byte("module banger\n\ngo 1.26\n"), 0o644)
	prefix := filepath.Join(root, "usr")
	os.MkdirAll(filepath.Join(prefix, "bin"), 0o755)
	exe := filepath.Join(prefix, "bin", "banger")
	os.WriteFile(exe, nil, 0o755)
	installed := filepath.Join(prefix, "lib", "banger")
	override := filepath.Join(root, "custom")

	mk := func(dir string) {
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, BundleFile), []byte("{}"), 0o644)
	}
	loc := Locator{WorkDir: filepath.Join(checkout, "internal", "x"), Executable: exe}
	want := []Candidate{{FromCheckout, filepath.Join(checkout, "runtime")}, {FromInstalled, installed}}
	if diff := cmp.Diff(want, loc.Candidates()); diff != "" {
		t.Errorf("candidates (-want +got):\n%s", diff)
	}
	if _, err := Resolve(loc); !errors.Is(err, ErrNoBundle) || !strings.Contains(err.Error(), NoBundleHint) {
		t.Errorf("Resolve with no bundle = %v", err)
	}
	mk(installed)
	if c, err := Resolve(loc); err != nil || c.Source != FromInstalled {
		t.Errorf("Resolve = %+v, %v; want the installed bundle", c, err)
	}
	mk(filepath.Join(checkout, "runtime"))
	if c, err := Resolve(loc); err != nil || c.Source != FromCheckout {
		t.Errorf("Resolve = %+v, %v; want the checkout bundle first", c, err)
	}
	loc.Override = override
	if _, err := Resolve(loc); err == nil {
		t.Error("Resolve with an empty override fell back to other candidates")
	}
	mk(override)
	if c, err := Resolve(loc); err != nil || c.Source != FromConfig || c.Dir != override {
		t.Errorf("Resolve = %+v, %v; want the override", c, err)
	}
	// Outside a banger checkout only the installed location counts.
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "go.mod"), []byte("module example.com/other\n"), 0o644)
	if c := (Locator{WorkDir: other, Executable: exe}).Candidates(); len(c) != 1 || c[0].Source != FromInstalled {
		t.Errorf("candidates outside a checkout = %+v", c)
	}
}

func TestBundleValidate(t *testing.T) {
	good := Bundle{Version: 1, Kernel: "k", Initrd: "i", Rootfs: "r"}
	if err := good.Validate(); err != nil {
		t.Error(err)
	}
	for name, b := range map[string]Bundle{
		"version":  {Version: 2, Kernel: "k", Initrd: "i", Rootfs: "r"},
		"missing":  {Version: 1, Kernel: "k"},
		"escape":   {Version: 1, Kernel: "../k", Initrd: "i", Rootfs: "r"},
		"absolute": {Version: 1, Kernel: "k", Initrd: "/i", Rootfs: "r"},
		"files":    {Version: 1, Kernel: "k", Initrd: "i", Rootfs: "r", Files: map[string]string{"../x": "00"}},
	} {
		if err := b.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, b)
		}
	}
}

func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			f, _ := os.Open(p)
			h, _ := io.ReadAll(io.LimitReader(f, 4096))
			f.Close()
			rel, _ := filepath.Rel(dir, p)
			out[rel] = string(h)
		}
		return nil
	})
	return out
}

func TestLoadOrInferReadsTheOlderLayout(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"vmlinuz", "initrd.img", "rootfs.ext4", "manifest.txt"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "banger-vmm-qemu"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrInfer(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b.Kernel != "vmlinuz" || b.Initrd != "initrd.img" || b.Rootfs != "rootfs.ext4" || b.VMM != "banger-vmm-qemu" || b.Manifest != "manifest.txt" {
		t.Errorf("inferred bundle = %+v", b)
	}
	if Abs(dir, b.Rootfs) != filepath.Join(dir, "rootfs.ext4") {
		t.Errorf("Abs = %s", Abs(dir, b.Rootfs))
	}
	if err := os.Remove(filepath.Join(dir, "rootfs.ext4")); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrInfer(dir); err == nil || !strings.Contains(err.Error(), "older layout") {
		t.Errorf("a bundle without a root file system: %v", err)
	}
}
