package bootstrap

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// writeCacheEntry makes a finished cache entry whose result records sha.
func writeCacheEntry(t *testing.T, dir, key, sha string) string {
	t.Helper()
	p := filepath.Join(dir, "images", key)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(Result{ManifestSHA256: sha})
	for name, data := range map[string][]byte{resultFile: b, RootfsFile: make([]byte, 8192), KernelFile: []byte("k")} {
		if err := os.WriteFile(filepath.Join(p, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func writeDeb(t *testing.T, dir, name string, age time.Duration) string {
	t.Helper()
	p := filepath.Join(dir, "debs", "bookworm", name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(name), 0o644); err != nil {
		t.Fatal(err)
	}
	when := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(-age)
	if err := os.Chtimes(p, when, when); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPruneCacheRemovesOnlyWhatNoImageUses(t *testing.T) {
	dir := t.TempDir()
	kept := writeCacheEntry(t, dir, "aaa", "sha-used")
	unused := writeCacheEntry(t, dir, "bbb", "sha-gone")
	incomplete := filepath.Join(dir, "images", "ccc")
	os.MkdirAll(incomplete, 0o755)
	work := filepath.Join(dir, "images", ".ddd.work-1")
	os.MkdirAll(work, 0o755)
	newCurl := writeDeb(t, dir, "curl_8.5.0-2_amd64.deb", 0)
	oldCurl := writeDeb(t, dir, "curl_7.88.1-10_amd64.deb", 48*time.Hour)
	i386 := writeDeb(t, dir, "curl_7.88.1-10_i386.deb", 96*time.Hour)
	odd := writeDeb(t, dir, "not-a-package.deb", 96*time.Hour)
	used := func(sha string) bool { return sha == "sha-used" }

	paths := func(rs []Removal) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Path)
		}
		sort.Strings(out)
		return out
	}
	want := []string{oldCurl, unused, incomplete}
	sort.Strings(want)

	dry, err := PruneCache(dir, used, true)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, paths(dry)); diff != "" {
		t.Errorf("dry run lists (-want +got):\n%s", diff)
	}
	for _, r := range dry {
		if _, err := os.Stat(r.Path); err != nil {
			t.Errorf("the dry run removed %s", r.Path)
		}
		if r.Why == "" || (r.Path == unused && r.Bytes < 8192) {
			t.Errorf("removal %+v lacks its reason or size", r)
		}
	}

	done, err := PruneCache(dir, used, false)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, paths(done)); diff != "" {
		t.Errorf("prune removed (-want +got):\n%s", diff)
	}
	for _, p := range want {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there: %v", p, err)
		}
	}
	for _, p := range []string{kept, work, newCurl, i386, odd} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("prune removed %s, which it must keep: %v", p, err)
		}
	}
}

func TestPruneCacheLeavesABusyCacheAlone(t *testing.T) {
	dir := t.TempDir()
	entry := writeCacheEntry(t, dir, "aaa", "sha")
	f, err := os.OpenFile(filepath.Join(dir, "bootstrap.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := PruneCache(dir, func(string) bool { return false }, false); !errors.Is(err, ErrCacheBusy) {
		t.Errorf("err = %v, want ErrCacheBusy", err)
	}
	if _, err := os.Stat(entry); err != nil {
		t.Errorf("a busy cache lost %s", entry)
	}
	if rs, err := PruneCache(filepath.Join(dir, "missing"), nil, false); err != nil || len(rs) != 0 {
		t.Errorf("a missing cache: %v, %v", rs, err)
	}
}

// writeKernelEntry makes a finished kernel build in the cache.
func writeKernelEntry(t *testing.T, dir, key string) string {
	t.Helper()
	p := filepath.Join(dir, "kernels", key)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(kernelBuild{Key: key, Release: "6.1-banger-microvm"})
	for name, data := range map[string][]byte{resultFile: b, VmlinuxFile: make([]byte, 4096), "bzImage": []byte("b"), "config": []byte("c")} {
		if err := os.WriteFile(filepath.Join(p, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// A built kernel goes with the last cached image made with it.
func TestPruneCacheRemovesKernelsNoCachedImageUses(t *testing.T) {
	dir := t.TempDir()
	withKernel := func(key, sha, kernel string) {
		p := writeCacheEntry(t, dir, key, sha)
		b, _ := json.Marshal(Result{ManifestSHA256: sha, KernelBuild: kernel})
		if err := os.WriteFile(filepath.Join(p, resultFile), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	withKernel("aaa", "sha-used", "k-used")
	withKernel("bbb", "sha-gone", "k-gone")
	kept := writeKernelEntry(t, dir, "k-used")
	gone := writeKernelEntry(t, dir, "k-gone")
	orphan := writeKernelEntry(t, dir, "k-orphan")
	incomplete := filepath.Join(dir, "kernels", "k-half")
	os.MkdirAll(incomplete, 0o755)
	work := filepath.Join(dir, "kernels", ".k-new.work-1")
	os.MkdirAll(work, 0o755)

	done, err := PruneCache(dir, func(sha string) bool { return sha == "sha-used" }, false)
	if err != nil {
		t.Fatal(err)
	}
	why := map[string]string{}
	for _, r := range done {
		why[r.Path] = r.Why
	}
	want := map[string]string{
		filepath.Join(dir, "images", "bbb"): "cached image no image uses",
		gone:                                "cached kernel no cached image uses",
		orphan:                              "cached kernel no cached image uses",
		incomplete:                          "incomplete cached kernel",
	}
	if diff := cmp.Diff(want, why); diff != "" {
		t.Errorf("prune removed (-want +got):\n%s", diff)
	}
	for _, p := range []string{kept, work} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("prune removed %s, which it must keep: %v", p, err)
		}
	}
}
