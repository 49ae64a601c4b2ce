package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"banger/internal/testutil"
)

func TestRuntimeBundleInstallsVerifiesAndRefusesTampering(t *testing.T) {
	testutil.Short(t, "bootstraps (or reuses) a guest image")
	testutil.GuestImage(t) // root, mmdebstrap and a warm cache
	e := newEnv(t)
	cache := filepath.Join(e.home, "cache", "banger")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(testutil.GuestImageCacheDir(), filepath.Join(cache, "bootstrap")); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	dir, build, dest := filepath.Join(work, "runtime"), filepath.Join(work, "build"), filepath.Join(work, "installed")
	out := e.must("internal", "runtime-bundle", "--dir", dir, "--build", build)
	if !strings.Contains(out, "runtime-bundle.toml") {
		t.Errorf("runtime-bundle output = %q", out)
	}
	manifest := filepath.Join(build, "runtime-bundle.toml")

	// A clean XDG home installs from the local manifest and verifies.
	clean := newEnv(t)
	clean.must("runtime", "install", "--manifest", manifest, "--dest", dest)
	if out := clean.must("runtime", "verify", dest); !strings.Contains(out, "verified") {
		t.Errorf("verify output = %q", out)
	}

	// A tampered archive is refused and the installed bundle is untouched.
	archive := filepath.Join(build, "banger-runtime.tar.gz")
	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	bad := filepath.Join(work, "tampered.tar.gz")
	if err := os.WriteFile(bad, data, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	badManifest := filepath.Join(work, "tampered.toml")
	if err := os.WriteFile(badManifest, []byte(strings.ReplaceAll(string(m), archive, bad)), 0o644); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(m), archive) {
		t.Fatalf("manifest does not name the archive %s:\n%s", archive, m)
	}
	_, errOut, code := clean.banger("runtime", "install", "--manifest", badManifest, "--dest", dest)
	if code == 0 || !strings.Contains(errOut, "checksum mismatch") {
		t.Errorf("tampered install: exit %d, stderr %q", code, errOut)
	}
	clean.must("runtime", "verify", dest)
}
