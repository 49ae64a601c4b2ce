package testutil

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"banger/internal/bootstrap"
	"banger/internal/system"
)

// GuestImageCacheEnv names the directory where GuestImage keeps its
// bootstrap cache; the default is DefaultGuestImageCache.
const GuestImageCacheEnv = "BANGER_TEST_CACHE"

// GuestKernelEnv selects the kernel of the test guest image: "debian"
// (the default) or "microvm", which the whole guest tier then boots.
const GuestKernelEnv = "BANGER_TEST_KERNEL"

// GuestKernel is the kernel GuestKernelEnv selects, as
// bootstrap.Options.Kernel and the bootstrap_kernel setting take it.
func GuestKernel() string {
	if k := os.Getenv(GuestKernelEnv); k != "" {
		return k
	}
	return bootstrap.KernelDebian
}

// DefaultGuestImageCache is where GuestImage caches images when
// BANGER_TEST_CACHE is unset. It lies outside the repository on purpose.
const DefaultGuestImageCache = "/var/cache/banger-test"

// GuestImage returns a bootable Debian guest image built by banger's own
// bootstrap with default options (and GuestKernel's kernel), for
// end-to-end and VMM tests. The first
// call on a machine builds it (about a minute); later calls, from any test
// process, reuse the cached image, and concurrent builders wait for each
// other through a lock file in the cache. The returned paths point into the
// cache and must be treated as read-only: copy the rootfs before booting
// it read-write.
//
// It skips the test with a one-line reason unless it runs as root with
// mmdebstrap installed, and under `go test -short`.
func GuestImage(t testing.TB) bootstrap.Result {
	t.Helper()
	return GuestImageWithKernel(t, GuestKernel())
}

// GuestImageWithKernel is GuestImage with the given kernel (a
// bootstrap.Options.Kernel), whatever GuestKernelEnv says.
func GuestImageWithKernel(t testing.TB, kernel string) bootstrap.Result {
	t.Helper()
	Short(t, "guest tier: bootstraps or boots a guest image")
	if os.Geteuid() != 0 {
		t.Skip("guest tier: bootstrapping a guest image needs root (CI runs it as root)")
	}
	if _, err := system.LookPath("mmdebstrap"); err != nil {
		t.Skip("guest tier: needs mmdebstrap to bootstrap a guest image (apt-get install mmdebstrap)")
	}
	dir, err := GuestImageCache()
	if err != nil {
		t.Fatal(err)
	}
	// A microvm kernel's first build compiles it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	res, err := bootstrap.Build(ctx, bootstrap.Deps{Log: logger},
		bootstrap.Options{Name: "banger-test", CacheDir: dir, Kernel: kernel},
		func(p bootstrap.Progress) {
			t.Logf("guest image: %s: %s (%s)", p.Step, p.Message, p.Elapsed.Round(time.Millisecond))
		})
	if err != nil {
		t.Fatalf("bootstrapping the test guest image in %s: %v", dir, err)
	}
	return res
}

// GuestImageCache returns the absolute cache directory GuestImage uses:
// $BANGER_TEST_CACHE, else DefaultGuestImageCache.
func GuestImageCache() (string, error) {
	dir := os.Getenv(GuestImageCacheEnv)
	if dir == "" {
		dir = DefaultGuestImageCache
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", GuestImageCacheEnv, err)
	}
	return abs, nil
}
