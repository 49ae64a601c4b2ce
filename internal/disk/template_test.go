package disk

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"banger/internal/system"
	"banger/internal/testutil"
)

// countingRunner counts the tools a Manager runs.
type countingRunner struct {
	system.InputRunner
	mu sync.Mutex
	n  map[string]int
}

func (c *countingRunner) count(argv []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[filepath.Base(argv[0])]++
}

func (c *countingRunner) Run(ctx context.Context, argv ...string) error {
	c.count(argv)
	return c.InputRunner.Run(ctx, argv...)
}

func (c *countingRunner) Output(ctx context.Context, argv ...string) ([]byte, error) {
	c.count(argv)
	return c.InputRunner.Output(ctx, argv...)
}

func (c *countingRunner) RunInput(ctx context.Context, in io.Reader, argv ...string) ([]byte, error) {
	c.count(argv)
	return c.InputRunner.RunInput(ctx, in, argv...)
}

func TestTemplatesMakeEachBlankDiskOnce(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "debugfs", "e2fsck")
	ctx := context.Background()
	dir, tpl := t.TempDir(), t.TempDir()
	r := &countingRunner{InputRunner: system.Plain(), n: map[string]int{}}
	m := New(Deps{Runner: r, Templates: tpl})
	l1, l2, w1, w2 := filepath.Join(dir, "l1"), filepath.Join(dir, "l2"), filepath.Join(dir, "w1"), filepath.Join(dir, "w2")
	for _, p := range []string{l1, l2} {
		if err := m.MakeLayer(ctx, p, 64<<20); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{w1, w2} {
		if err := m.CreateWork(ctx, p, 256<<20); err != nil {
			t.Fatal(err)
		}
	}
	if r.n["mkfs.ext4"] != 2 || r.n["debugfs"] != 1 {
		t.Errorf("two layers and two work disks ran %v; want one mkfs per kind and one debugfs for the layer's directories", r.n)
	}
	for _, p := range []string{l1, l2, w1, w2} {
		fsck(t, p)
	}
	for _, p := range []string{l1, l2} {
		for _, d := range []string{"/upper", "/work"} {
			if ino, ok := debugfsStat(t, p, d); !ok || ino.Type != "directory" || ino.Perm != 0o755 || ino.UID != 0 {
				t.Errorf("%s:%s = %+v (exists %v), want a root-owned 0755 directory", p, d, ino, ok)
			}
		}
	}
	if a := allocated(t, l2); a > 2<<20 {
		t.Errorf("a copied 64 MiB layer allocates %d bytes, want the template's few", a)
	}
	// A disk is a copy: writing it leaves the template and the other disk be.
	tpls, _ := filepath.Glob(filepath.Join(tpl, "layer-*.ext4"))
	if len(tpls) != 1 {
		t.Fatalf("layer templates %v, want one", tpls)
	}
	before, other := testutil.FileSHA256(t, tpls[0]), testutil.FileSHA256(t, l2)
	debugfsRun(t, l1, true, "mkdir /upper/changed")
	if testutil.FileSHA256(t, tpls[0]) != before || testutil.FileSHA256(t, l2) != other {
		t.Error("writing one layer changed its template or another layer")
	}
	if err := m.MakeLayer(ctx, l1, 64<<20); err == nil {
		t.Error("an existing layer was overwritten")
	}

	// At most maxTemplates are kept, the one just made among them.
	for i := 0; i < maxTemplates+2; i++ {
		if err := m.CreateWork(ctx, filepath.Join(dir, "s"+strings.Repeat("x", i)), int64(32+i)<<20); err != nil {
			t.Fatal(err)
		}
	}
	all, _ := filepath.Glob(filepath.Join(tpl, "*.ext4"))
	last, _ := filepath.Glob(filepath.Join(tpl, fmt.Sprintf("work-%d-*.ext4", (32+maxTemplates+1)<<20)))
	if len(all) != maxTemplates || len(last) != 1 {
		t.Errorf("templates after %d sizes: %d (%v), the last one kept: %v", maxTemplates+3, len(all), all, last)
	}
}

// TestTemplateNamesAreTheFilesMade pins WorkTemplate and LayerTemplate to
// the files blank makes (what `image prune` keeps), and shows that a
// template removed between two creates is made again.
func TestTemplateNamesAreTheFilesMade(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "debugfs", "e2fsck")
	ctx := context.Background()
	dir, tpl := t.TempDir(), t.TempDir()
	m := New(Deps{Runner: system.Plain(), Templates: tpl})
	if err := m.CreateWork(ctx, filepath.Join(dir, "w1"), 256<<20); err != nil {
		t.Fatal(err)
	}
	if err := m.MakeLayer(ctx, filepath.Join(dir, "l1"), 64<<20); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{WorkTemplate(256 << 20), LayerTemplate(64 << 20)} {
		if !IsTemplate(name) {
			t.Errorf("IsTemplate(%q) = false", name)
		}
		if _, err := os.Stat(filepath.Join(tpl, name)); err != nil {
			t.Errorf("template %s was not made: %v", name, err)
		}
		if err := os.Remove(filepath.Join(tpl, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.CreateWork(ctx, filepath.Join(dir, "w2"), 256<<20); err != nil {
		t.Fatalf("creating a work disk after its template was pruned: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tpl, WorkTemplate(256<<20))); err != nil {
		t.Errorf("the pruned template was not made again: %v", err)
	}
	if IsTemplate(".work-1.ext4.tmp") || IsTemplate("notes.txt") {
		t.Error("IsTemplate accepts a file that is not a template")
	}
}
