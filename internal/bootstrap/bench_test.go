package bootstrap

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkExtractVmlinux extracts the kernel named by BANGER_BENCH_KERNEL
// (a real bzImage, e.g. an image's vmlinuz), or a synthetic 40 MB LZ4 one.
func BenchmarkExtractVmlinux(b *testing.B) {
	var img []byte
	if p := os.Getenv("BANGER_BENCH_KERNEL"); p != "" {
		var err error
		if img, err = os.ReadFile(p); err != nil {
			b.Fatal(err)
		}
	} else {
		img = fakeBzImage(compressFixture(b, LZ4, fakeELF(b, 40<<20)), true)
	}
	b.SetBytes(int64(len(img)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := ExtractVmlinux(img); err != nil {
			b.Fatal(err)
		}
	}
}

// benchCache returns the cache directory for bootstrap benchmarks, which
// need mmdebstrap, and as a user who is not root newuidmap and subordinate
// ids (ModeRootless).
func benchCache(b *testing.B) string {
	if err := CheckTools(ModeFor(os.Geteuid()), nil); err != nil {
		b.Skipf("needs the bootstrap's tools: %v", err)
	}
	dir := os.Getenv("BANGER_BENCH_CACHE")
	if dir == "" {
		b.Skip("set BANGER_BENCH_CACHE to a cache directory (bench/bootstrap.sh does)")
	}
	return dir
}

// BenchmarkBootstrapCold rebuilds the image every iteration (Refresh); the
// package download cache in BANGER_BENCH_CACHE stays warm after the first.
func BenchmarkBootstrapCold(b *testing.B) {
	cache := benchCache(b)
	for i := 0; i < b.N; i++ {
		res, err := Build(context.Background(), Deps{}, Options{Name: "bench", CacheDir: cache, Refresh: true}, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(res.InitrdSize), "initrd-bytes")
		b.ReportMetric(float64(res.RootfsAlloc)/(1<<20), "rootfs-MiB")
	}
}

// BenchmarkBootstrapCached measures an identical bootstrap served from the
// cache into a fresh output directory, as `banger image bootstrap` does.
func BenchmarkBootstrapCached(b *testing.B) {
	cache := benchCache(b)
	if _, err := Build(context.Background(), Deps{}, Options{Name: "bench", CacheDir: cache}, nil); err != nil {
		b.Fatal(err)
	}
	out := b.TempDir()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dir := filepath.Join(out, "img", string(rune('a'+i%26)))
		os.RemoveAll(dir)
		res, err := Build(context.Background(), Deps{}, Options{Name: "bench", CacheDir: cache, OutDir: dir}, nil)
		if err != nil {
			b.Fatal(err)
		}
		if !res.Cached {
			b.Fatal("not served from the cache")
		}
	}
}

// BenchmarkInitramfs writes the initramfs of the cached image's kernel and
// reports its compressed size.
func BenchmarkInitramfs(b *testing.B) {
	spec := InitramfsSpec{KernelVersion: "6.1.0-bench", Busybox: bytes.Repeat([]byte("busybox "), 250_000)}
	for _, m := range DefaultModules() {
		spec.Modules = append(spec.Modules, ModuleFile{Name: m, Data: fakeELF(b, 100_000)})
	}
	var size int
	for i := 0; i < b.N; i++ {
		var buf bytes.Buffer
		if err := WriteInitramfs(&buf, spec); err != nil {
			b.Fatal(err)
		}
		size = buf.Len()
	}
	b.ReportMetric(float64(size), "bytes")
}
