package bootstrap_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"banger/internal/bootstrap"
	"banger/internal/testutil"
)

// TestBuildInterruptedForReal cancels a real bootstrap while mmdebstrap
// installs packages and checks that nothing is left: no output directory,
// no work directory in the cache, nothing mounted below the cache.
func TestBuildInterruptedForReal(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "mmdebstrap")
	testutil.Short(t, "runs mmdebstrap for several seconds")
	cache := t.TempDir()
	// Reuse downloaded packages when the shared test cache has them.
	{
		shared := os.Getenv(testutil.GuestImageCacheEnv)
		if shared == "" {
			shared = testutil.DefaultGuestImageCache
		}
		src := filepath.Join(shared, "debs", bootstrap.DefaultSuite)
		if _, err := os.Stat(src); err == nil {
			os.MkdirAll(filepath.Join(cache, "debs"), 0o755)
			exec.Command("cp", "-a", src, filepath.Join(cache, "debs")).Run()
		}
	}
	out := filepath.Join(t.TempDir(), "img")
	hostTmp := t.TempDir()
	t.Setenv("TMPDIR", hostTmp)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Cancel once mmdebstrap is well into the installation.
		time.Sleep(8 * time.Second)
		cancel()
	}()
	_, err := bootstrap.Build(ctx, bootstrap.Deps{},
		bootstrap.Options{Name: "interrupted", CacheDir: cache, OutDir: out, Packages: []string{"less"}}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Build = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("output directory exists after the interrupt")
	}
	entries, _ := os.ReadDir(filepath.Join(cache, "images"))
	for _, e := range entries {
		t.Errorf("left in the cache: %s", e.Name())
	}
	if left, _ := os.ReadDir(hostTmp); len(left) > 0 {
		t.Errorf("left in $TMPDIR: %v", left)
	}
	info, _ := os.ReadFile("/proc/self/mountinfo")
	if m := bootstrap.MountsUnder(info, cache); len(m) > 0 {
		t.Errorf("still mounted: %s", strings.Join(m, ", "))
	}
}
