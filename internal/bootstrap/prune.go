package bootstrap

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrCacheBusy says a bootstrap holds the cache, so PruneCache left it
// alone.
var ErrCacheBusy = errors.New("a bootstrap is using the cache")

// Removal is one thing PruneCache removed, or would remove in a dry run.
type Removal struct {
	Path  string
	Bytes int64 // bytes on disk
	// Why says what it was: "cached image no image uses", "incomplete
	// cached image", "cached kernel no cached image uses", "incomplete
	// cached kernel", "superseded package download".
	Why string
}

// PruneCache removes from the bootstrap cache in dir:
//
//   - each cached image whose manifest sha256 used reports false for (an
//     image registered from it records that sha256), and each cached image
//     left without a readable result;
//   - each built microvm kernel that no cached image kept by this prune
//     was made with, and each one left without a readable result;
//   - each downloaded package (.deb) of which a more recent download of the
//     same package and architecture exists: apt takes the newest version,
//     so an older file is never installed again.
//
// With dryRun it removes nothing and reports the same list. It takes the
// cache lock without waiting; when a bootstrap holds it, it returns
// ErrCacheBusy and removes nothing. A missing cache is empty.
func PruneCache(dir string, used func(manifestSHA256 string) bool, dryRun bool) ([]Removal, error) {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	f, err := os.OpenFile(filepath.Join(dir, "bootstrap.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the bootstrap cache lock: %w", err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrCacheBusy
		}
		return nil, fmt.Errorf("locking the bootstrap cache: %w", err)
	}
	out := cachedImagesToPrune(filepath.Join(dir, "images"), used)
	out = append(out, cachedKernelsToPrune(dir, out)...)
	debs, _ := filepath.Glob(filepath.Join(dir, "debs", "*"))
	for _, d := range debs {
		out = append(out, supersededDebs(d)...)
	}
	if dryRun {
		return out, nil
	}
	var errs []error
	done := out[:0]
	for _, r := range out {
		if err := os.RemoveAll(r.Path); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", r.Path, err))
			continue
		}
		done = append(done, r)
	}
	return done, errors.Join(errs...)
}

// cachedImagesToPrune lists the finished cache entries (work directories
// of running or interrupted builds start with "." and are not theirs to
// judge) that no image uses or that are incomplete.
func cachedImagesToPrune(imagesDir string, used func(string) bool) []Removal {
	entries, _ := os.ReadDir(imagesDir)
	var out []Removal
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(imagesDir, e.Name())
		why := ""
		var r Result
		b, err := os.ReadFile(filepath.Join(p, resultFile))
		switch {
		case err != nil || json.Unmarshal(b, &r) != nil:
			why = "incomplete cached image"
		case !used(r.ManifestSHA256):
			why = "cached image no image uses"
		default:
			continue
		}
		out = append(out, Removal{Path: p, Bytes: dirBytes(p), Why: why})
	}
	return out
}

// cachedKernelsToPrune lists the finished kernel builds in dir/kernels
// that no cached image in dir/images outside removing was made with, and
// those without a readable result.
func cachedKernelsToPrune(dir string, removing []Removal) []Removal {
	gone := map[string]bool{}
	for _, r := range removing {
		gone[r.Path] = true
	}
	used := map[string]bool{}
	images, _ := filepath.Glob(filepath.Join(dir, "images", "*", resultFile))
	for _, rf := range images {
		var r Result
		if b, err := os.ReadFile(rf); err == nil && json.Unmarshal(b, &r) == nil && !gone[filepath.Dir(rf)] {
			used[r.KernelBuild] = true
		}
	}
	kernelsDir := filepath.Join(dir, "kernels")
	entries, _ := os.ReadDir(kernelsDir)
	var out []Removal
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(kernelsDir, e.Name())
		why := ""
		switch k, err := loadKernel(p); {
		case err != nil:
			why = "incomplete cached kernel"
		case !used[k.Key]:
			why = "cached kernel no cached image uses"
		default:
			continue
		}
		out = append(out, Removal{Path: p, Bytes: dirBytes(p), Why: why})
	}
	return out
}

// supersededDebs lists the .deb files in dir (name_version_arch.deb) of
// which a more recently modified file of the same name and architecture
// exists.
func supersededDebs(dir string) []Removal {
	entries, _ := os.ReadDir(dir)
	type deb struct {
		path  string
		mtime int64
		bytes int64
	}
	groups := map[string][]deb{}
	for _, e := range entries {
		parts := strings.Split(strings.TrimSuffix(e.Name(), ".deb"), "_")
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".deb") || len(parts) != 3 {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		p := filepath.Join(dir, e.Name())
		key := parts[0] + "_" + parts[2]
		groups[key] = append(groups[key], deb{p, info.ModTime().UnixNano(), allocatedBytes(p)})
	}
	var out []Removal
	for _, g := range groups {
		sort.Slice(g, func(i, j int) bool {
			return g[i].mtime > g[j].mtime || g[i].mtime == g[j].mtime && g[i].path > g[j].path
		})
		for _, d := range g[1:] {
			out = append(out, Removal{Path: d.path, Bytes: d.bytes, Why: "superseded package download"})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// dirBytes is what the files directly in dir occupy (a cache entry has no
// subdirectories).
func dirBytes(dir string) int64 {
	entries, _ := os.ReadDir(dir)
	var n int64
	for _, e := range entries {
		n += allocatedBytes(filepath.Join(dir, e.Name()))
	}
	return n
}
