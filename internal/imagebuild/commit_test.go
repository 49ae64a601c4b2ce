package imagebuild

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"banger/internal/disk"
	"banger/internal/image"
)

// fakeTools stands in for disk.Manager: it records calls and fails the one
// named in fail.
type fakeTools struct {
	calls  []string
	fail   string
	status []byte // nil: the image has no dpkg status
}

func (f *fakeTools) call(op, path string) error {
	f.calls = append(f.calls, op+" "+filepath.Base(path))
	if op == f.fail {
		return errors.New("injected " + op + " failure")
	}
	return nil
}

func (f *fakeTools) CheckClean(ctx context.Context, path string) error { return f.call("check", path) }

func (f *fakeTools) CloneRoot(ctx context.Context, src, dst string) (disk.Method, error) {
	if err := f.call("clone", dst); err != nil {
		return "", err
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	return disk.SparseCopy, os.WriteFile(dst, b, 0o600)
}

func (f *fakeTools) Flatten(ctx context.Context, base, layer, dst string) error {
	if err := f.call("flatten", layer); err != nil {
		return err
	}
	b, err := os.ReadFile(base)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o600)
}

func (f *fakeTools) Scrub(ctx context.Context, rootfs string) error { return f.call("scrub", rootfs) }

func (f *fakeTools) ReadFile(ctx context.Context, img, path string) ([]byte, error) {
	if err := f.call("read", img); err != nil {
		return nil, err
	}
	if f.status == nil {
		return nil, fmt.Errorf("reading %s: %w", path, disk.ErrNoFile)
	}
	return f.status, nil
}

func TestCommitDiskMovesOrClones(t *testing.T) {
	for _, move := range []bool{true, false} {
		dir := t.TempDir()
		src, dst := filepath.Join(dir, "root.ext4"), filepath.Join(dir, "stage", RootfsFile)
		os.WriteFile(src, []byte("disk"), 0o600)
		os.Mkdir(filepath.Dir(dst), 0o755)
		f := &fakeTools{status: []byte("Package: a\n")}
		status, err := CommitDisk(context.Background(), f, src, dst, move)
		if err != nil || string(status) != "Package: a\n" {
			t.Fatalf("move=%v: %q, %v", move, status, err)
		}
		want := "check root.ext4,scrub rootfs.ext4,read rootfs.ext4"
		if !move {
			want = "check root.ext4,clone rootfs.ext4,scrub rootfs.ext4,read rootfs.ext4"
		}
		if got := strings.Join(f.calls, ","); got != want {
			t.Errorf("move=%v: calls %s, want %s", move, got, want)
		}
		_, srcErr := os.Stat(src)
		if move != errors.Is(srcErr, os.ErrNotExist) {
			t.Errorf("move=%v: source exists afterwards: %v", move, srcErr == nil)
		}
		if st, err := os.Stat(dst); err != nil || st.Mode().Perm() != 0o644 {
			t.Errorf("move=%v: rootfs %v %v", move, st, err)
		}
	}
}

func TestCommitDiskFailureLeavesNoRootfs(t *testing.T) {
	for _, op := range []string{"check", "clone", "scrub", "read"} {
		dir := t.TempDir()
		src, dst := filepath.Join(dir, "root.ext4"), filepath.Join(dir, RootfsFile)
		os.WriteFile(src, []byte("disk"), 0o600)
		f := &fakeTools{fail: op, status: []byte("x")}
		if _, err := CommitDisk(context.Background(), f, src, dst, false); err == nil || !strings.Contains(err.Error(), "injected") {
			t.Errorf("%s: err = %v", op, err)
		}
		if _, err := os.Stat(dst); err == nil {
			t.Errorf("%s failed but %s exists", op, dst)
		}
		if _, err := os.Stat(src); err != nil {
			t.Errorf("%s failed and the vm lost its disk: %v", op, err)
		}
	}
	// No dpkg status is not an error: the image is not Debian's.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "root.ext4"), []byte("disk"), 0o600)
	if st, err := CommitDisk(context.Background(), &fakeTools{}, filepath.Join(dir, "root.ext4"), filepath.Join(dir, RootfsFile), true); err != nil || st != nil {
		t.Errorf("image without dpkg: %q, %v", st, err)
	}
}

func TestCommitLayeredFlattensThenScrubs(t *testing.T) {
	dir := t.TempDir()
	base, layer, dst := filepath.Join(dir, "base.ext4"), filepath.Join(dir, "layer.ext4"), filepath.Join(dir, RootfsFile)
	os.WriteFile(base, []byte("base"), 0o444)
	os.WriteFile(layer, []byte("layer"), 0o600)
	f := &fakeTools{status: []byte("Package: a\n")}
	status, err := CommitLayered(context.Background(), f, base, layer, dst)
	if err != nil || string(status) != "Package: a\n" {
		t.Fatalf("%q, %v", status, err)
	}
	if got, want := strings.Join(f.calls, ","), "flatten layer.ext4,scrub rootfs.ext4,read rootfs.ext4"; got != want {
		t.Errorf("calls %s, want %s", got, want)
	}
	if st, err := os.Stat(dst); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("rootfs %v %v", st, err)
	}
	for _, op := range []string{"flatten", "scrub", "read"} {
		os.Remove(dst)
		f := &fakeTools{fail: op, status: []byte("x")}
		if _, err := CommitLayered(context.Background(), f, base, layer, dst); err == nil || !strings.Contains(err.Error(), "injected") {
			t.Errorf("%s: err = %v", op, err)
		}
		if _, err := os.Stat(dst); err == nil {
			t.Errorf("%s failed but %s exists", op, dst)
		}
		for _, p := range []string{base, layer} {
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s failed and %s is gone: %v", op, p, err)
			}
		}
	}
}

func TestAssemble(t *testing.T) {
	dir := t.TempDir()
	baseDir, stage, final := filepath.Join(dir, "base"), filepath.Join(dir, ".build-1"), filepath.Join(dir, "dev-1")
	os.MkdirAll(baseDir, 0o755)
	os.MkdirAll(stage, 0o755)
	base := &image.Image{Name: "base", KernelVersion: "6.1.0-x", Kernel: filepath.Join(baseDir, "vmlinuz"),
		Vmlinux: filepath.Join(baseDir, "vmlinux"), Initrd: filepath.Join(baseDir, "initrd.img")}
	for _, p := range []string{base.Kernel, base.Vmlinux, base.Initrd} {
		os.WriteFile(p, []byte(filepath.Base(p)), 0o644)
	}
	os.WriteFile(filepath.Join(stage, RootfsFile), make([]byte, 4096), 0o644)
	status := []byte("Package: zlib1g\nStatus: install ok installed\nVersion: 1:1.2\nArchitecture: amd64\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\nArchitecture: all\n\nPackage: git\nStatus: install ok installed\nVersion: 1:2.39\nArchitecture: amd64\n")
	now := time.Date(2025, 2, 3, 4, 5, 6, 0, time.UTC)
	img, err := Assemble(context.Background(), Assembly{Stage: stage, Dir: final, Base: base, DpkgStatus: status, Now: now,
		Sidecar: Sidecar{Name: "dev", Source: image.FromBuild, Base: "base", PackagesFile: "default", PackagesSHA256: "abc", BuildLog: filepath.Join(final, BuildLogFile)}})
	if err != nil {
		t.Fatal(err)
	}
	if img.Kernel != filepath.Join(final, "vmlinuz") || img.Vmlinux != filepath.Join(final, "vmlinux") || img.Initrd != filepath.Join(final, "initrd.img") ||
		img.Rootfs != filepath.Join(final, RootfsFile) || img.SizeBytes != 4096 || img.KernelVersion != "6.1.0-x" || img.PackagesSHA256 != "abc" || !img.CreatedAt.Equal(now) {
		t.Errorf("image = %+v", img)
	}
	manifest, _ := os.ReadFile(filepath.Join(stage, ManifestFile))
	if string(manifest) != "git 1:2.39 amd64\nzlib1g 1:1.2 amd64\n" || img.ManifestSHA256 != SHA256Hex(manifest) {
		t.Errorf("manifest %q sha %s", manifest, img.ManifestSHA256)
	}
	// The kernel files are shared with the base, not copied.
	a, _ := os.Stat(base.Kernel)
	b, _ := os.Stat(filepath.Join(stage, "vmlinuz"))
	if !os.SameFile(a, b) {
		t.Error("kernel was copied instead of linked")
	}
	sc, err := ReadSidecar(stage)
	if err != nil || sc.Packages != 2 || sc.ManifestSHA256 != img.ManifestSHA256 || sc.KernelVersion != "6.1.0-x" || sc.PackagesFile != "default" {
		t.Errorf("sidecar = %+v, %v", sc, err)
	}
}

func TestStaleRule(t *testing.T) {
	cur := DefaultPackagesSHA256()
	files := map[string][]byte{"/u/pk.txt": []byte("git\n")}
	read := func(p string) ([]byte, error) {
		if b, ok := files[p]; ok {
			return b, nil
		}
		return nil, os.ErrNotExist
	}
	for name, tc := range map[string]struct {
		sha  string
		sc   *Sidecar
		want bool
	}{
		"bootstrap image":            {"", nil, false},
		"default, current":           {cur, &Sidecar{PackagesFile: DefaultSource}, false},
		"default, older manifest":    {"old", &Sidecar{PackagesFile: DefaultSource}, true},
		"no sidecar, older":          {"old", nil, true},
		"user file unchanged":        {SHA256Hex([]byte("git\n")), &Sidecar{PackagesFile: "/u/pk.txt"}, false},
		"user file changed":          {SHA256Hex([]byte("curl\n")), &Sidecar{PackagesFile: "/u/pk.txt"}, true},
		"user file gone: cannot say": {"old", &Sidecar{PackagesFile: "/u/missing.txt"}, false},
	} {
		img := &image.Image{PackagesSHA256: tc.sha}
		if got := Stale(img, tc.sc, read); got != tc.want {
			t.Errorf("%s: stale = %v, want %v", name, got, tc.want)
		}
	}
}
