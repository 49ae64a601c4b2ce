package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"banger/internal/api"
	"banger/internal/bootstrap"
	"banger/internal/daemon/daemontest"
	"banger/internal/disk"
	"banger/internal/testutil"
)

// pruneFixture is a daemon with one image, one VM and, beside them, files
// prune must remove and files it must keep.
type pruneFixture struct {
	inst         *daemontest.Instance
	remove, keep []string
}

func writeFile(t *testing.T, path string, size int, age time.Duration) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	if age > 0 {
		when := time.Now().Add(-age)
		if err := os.Chtimes(path, when, when); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func newPruneFixture(t *testing.T) *pruneFixture {
	t.Helper()
	inst := daemontest.Start(t, nil)
	ctx := context.Background()
	st := inst.Daemon.Store()
	img := inst.AddImage(t, "base")
	img.ID, img.Name, img.ManifestSHA256 = "img-built", "built", "sha-built"
	img.BuildLog = writeFile(t, filepath.Join(inst.Paths.StateDir, "builds", "built-1.log"), 10, 60*24*time.Hour)
	if err := st.CreateImage(ctx, &img); err != nil {
		t.Fatal(err)
	}
	if _, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "dev", Image: "base", DiskBytes: 3 << 30, NoStart: true}, nil); err != nil {
		t.Fatal(err)
	}
	f := &pruneFixture{inst: inst}
	cache := filepath.Join(inst.Paths.CacheDir, "bootstrap")
	entry := func(key, sha string) string {
		dir := filepath.Join(cache, "images", key)
		writeFile(t, filepath.Join(dir, "rootfs.ext4"), 8192, 0)
		b, _ := json.Marshal(bootstrap.Result{ManifestSHA256: sha})
		if err := os.WriteFile(filepath.Join(dir, "result.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	tpl := inst.Paths.DiskTemplates()
	builds := filepath.Join(inst.Paths.StateDir, "builds")
	f.keep = []string{
		entry("k-built", "sha-built"),
		filepath.Join(cache, "images", ".k-work.work-1"),
		writeFile(t, filepath.Join(tpl, disk.WorkTemplate(8<<30)), 4096, 0), // the default work disk
		writeFile(t, filepath.Join(tpl, disk.WorkTemplate(3<<30)), 4096, 0), // dev's work disk
		writeFile(t, filepath.Join(tpl, disk.LayerTemplate(2<<30)), 4096, 0),
		writeFile(t, filepath.Join(tpl, ".work-9.ext4.tmp-1"), 4096, 0),
		writeFile(t, filepath.Join(tpl, "notes.txt"), 10, 0),
		img.BuildLog,
		writeFile(t, filepath.Join(builds, "recent-2.log"), 10, time.Hour),
	}
	os.MkdirAll(f.keep[1], 0o755)
	f.remove = []string{
		entry("k-old", "sha-old"),
		writeFile(t, filepath.Join(tpl, disk.WorkTemplate(5<<30)), 4096, 0),
		writeFile(t, filepath.Join(tpl, "work-1073741824-000000000000.ext4"), 4096, 0), // an older recipe
		writeFile(t, filepath.Join(builds, "failed-3.log"), 10, 40*24*time.Hour),
	}
	sort.Strings(f.remove)
	return f
}

func itemPaths(items []api.PruneItem) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Path)
	}
	sort.Strings(out)
	return out
}

func TestPruneRemovesOnlyWhatNoImageOrVMNeeds(t *testing.T) {
	f := newPruneFixture(t)
	ctx := context.Background()
	owned := []string{f.inst.Paths.ImagesDir(), filepath.Join(f.inst.Paths.DataDir, "vms"), filepath.Join(f.inst.Paths.StateDir, "vms")}
	before := map[string]map[string]string{}
	for _, d := range owned {
		before[d] = testutil.Tree(t, d)
	}

	dry, err := f.inst.Client.PruneImages(ctx, api.PruneRequest{DryRun: true, LogDays: 30})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(f.remove, itemPaths(dry.Items)); diff != "" {
		t.Errorf("dry run lists (-want +got):\n%s", diff)
	}
	if !dry.DryRun || dry.Bytes <= 0 {
		t.Errorf("dry run result %+v: want DryRun and the bytes it would free", dry)
	}
	for _, p := range append(f.remove, f.keep...) {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("the dry run removed %s", p)
		}
	}

	res, err := f.inst.Client.PruneImages(ctx, api.PruneRequest{LogDays: 30})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(f.remove, itemPaths(res.Items)); diff != "" {
		t.Errorf("prune removed (-want +got):\n%s", diff)
	}
	if res.Bytes != dry.Bytes {
		t.Errorf("prune freed %d bytes, the dry run said %d", res.Bytes, dry.Bytes)
	}
	for _, p := range f.remove {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s is still there", p)
		}
	}
	for _, p := range f.keep {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("prune removed %s, which it must keep", p)
		}
	}
	for _, d := range owned {
		if diff := cmp.Diff(before[d], testutil.Tree(t, d)); diff != "" {
			t.Errorf("prune changed %s, which images and VMs own (-before +after):\n%s", d, diff)
		}
	}
	again, err := f.inst.Client.PruneImages(ctx, api.PruneRequest{LogDays: 30})
	if err != nil || len(again.Items) != 0 {
		t.Errorf("a second prune: %+v, %v; want nothing left to remove", again, err)
	}
}

func TestPruneRefusesLogDaysOutOfBounds(t *testing.T) {
	inst := daemontest.Start(t, nil)
	log := writeFile(t, filepath.Join(inst.Paths.StateDir, "builds", "recent-1.log"), 10, 0)
	for _, days := range []int{0, -1, 1 << 20, 1<<63 - 1} {
		_, err := inst.Client.PruneImages(context.Background(), api.PruneRequest{LogDays: days})
		if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "1 day or more") {
			t.Errorf("log_days %d: err = %v, want an invalid request naming the bounds", days, err)
		}
	}
	if _, err := os.Stat(log); err != nil {
		t.Errorf("a refused prune removed a fresh log: %v", err)
	}
}

func TestDoctorShowsDiskUse(t *testing.T) {
	f := newPruneFixture(t)
	checks, err := f.inst.Client.Doctor(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range checks {
		if strings.HasPrefix(c.Name, "disk: ") {
			got[strings.TrimPrefix(c.Name, "disk: ")] = c.Detail
		}
	}
	for kind, want := range map[string]string{"images": "in 2 images", "vms": "in 1 vm (", "cache": "in 4 files", "templates": "in 7 files", "logs": " files ("} {
		if !strings.Contains(got[kind], want) {
			t.Errorf("doctor's disk: %s line = %q, want it to say %q", kind, got[kind], want)
		}
	}
}
