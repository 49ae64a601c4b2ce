package disk

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// The disk benchmarks. bench/disk.sh runs them with the environment they
// need and prints medians; run by hand they skip or use t.TempDir().

// benchImage makes (once per directory) a 2 GiB image file with 512 MiB of
// data in 64 runs of 8 MiB spread over it, like a rootfs made by mkfs.ext4 -d.
// full writes data over the whole 2 GiB instead.
func benchImage(b *testing.B, dir string, full bool) string {
	b.Helper()
	name := "bench-2g-sparse.img"
	if full {
		name = "bench-2g-full.img"
	}
	p := filepath.Join(dir, name)
	if st, err := os.Stat(p); err == nil && st.Size() == 2<<30 {
		return p
	}
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(2 << 30); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 8<<20)
	rand.Read(buf)
	step, n := int64(32<<20), 64
	if full {
		step, n = 8<<20, 256
	}
	for i := range n {
		if _, err := f.WriteAt(buf, int64(i)*step); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkCloneReflink clones a 2 GiB image on a reflink filesystem
// mounted at $BANGER_BENCH_REFLINK_DIR (bench/disk.sh makes an XFS loop).
// Target: ≤ 20 ms.
func BenchmarkCloneReflink(b *testing.B) {
	dir := os.Getenv("BANGER_BENCH_REFLINK_DIR")
	if dir == "" {
		b.Skip("set BANGER_BENCH_REFLINK_DIR to a directory on XFS or btrfs (bench/disk.sh does)")
	}
	src := benchImage(b, dir, true)
	m := New(Deps{})
	dst := filepath.Join(dir, "clone.img")
	for b.Loop() {
		method, err := m.CloneRoot(context.Background(), src, dst)
		if err != nil {
			b.Fatal(err)
		}
		if method != Reflink {
			b.Fatalf("method %s: %s does not support reflinks", method, dir)
		}
		b.StopTimer()
		os.Remove(dst)
		b.StartTimer()
	}
}

// BenchmarkSparseCopy compares banger's sparse copy with
// `cp --sparse=always` on the same 2 GiB image (512 MiB of data), in
// $BANGER_BENCH_DIR or a temporary directory. Each iteration runs both, in
// alternating order, with dirty pages flushed between runs outside the
// timings, so load from other processes hits both alike. It reports the
// median of each and the median of the per-iteration ratios. Target:
// banger/cp ≤ 1.0.
func BenchmarkSparseCopy(b *testing.B) {
	dir := os.Getenv("BANGER_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	src := benchImage(b, dir, false)
	dst := filepath.Join(dir, "copy.img")
	settle := func() {
		os.Remove(dst)
		exec.Command("sync").Run()
	}
	runBanger := func() time.Duration {
		start := time.Now()
		if _, err := cloneFile(context.Background(), src, dst, copyOnly); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	runCp := func() time.Duration {
		start := time.Now()
		if out, err := exec.Command("cp", "--sparse=always", src, dst).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v %s", err, out)
		}
		return time.Since(start)
	}
	settle()
	var banger, cp, ratio []float64
	i := 0
	for b.Loop() {
		var tb, tc time.Duration
		if i%2 == 0 {
			tb = runBanger()
			settle()
			tc = runCp()
		} else {
			tc = runCp()
			settle()
			tb = runBanger()
		}
		settle()
		i++
		banger = append(banger, float64(tb.Microseconds())/1000)
		cp = append(cp, float64(tc.Microseconds())/1000)
		ratio = append(ratio, float64(tb)/float64(tc))
	}
	b.ReportMetric(median(banger), "banger-ms")
	b.ReportMetric(median(cp), "cp-ms")
	b.ReportMetric(median(ratio), "ratio")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkLayerCreate makes an 8 GiB layer and writes a VM's identity
// into it over $BANGER_BENCH_ROOTFS (or a small test image): the disk part
// of `vm create` with a shared base. It reports the bytes the layer
// allocates afterwards.
func BenchmarkLayerCreate(b *testing.B) {
	base := os.Getenv("BANGER_BENCH_ROOTFS")
	if base == "" {
		base = filepath.Join(b.TempDir(), "rootfs.ext4")
		if out, err := exec.Command(toolPath(b, "mkfs.ext4"), "-q", base, "256M").CombinedOutput(); err != nil {
			b.Fatalf("mkfs.ext4: %v\n%s", err, out)
		}
	}
	m := realManager()
	ctx := context.Background()
	id := testIdentity(b)
	dir := b.TempDir()
	var alloc int64
	i := 0
	for b.Loop() {
		layer := filepath.Join(dir, fmt.Sprintf("layer-%d.ext4", i))
		i++
		if err := m.MakeLayer(ctx, layer, 8<<30); err != nil {
			b.Fatal(err)
		}
		if err := m.WriteLayerIdentity(ctx, base, layer, id); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		alloc = allocated(b, layer)
		os.Remove(layer)
		b.StartTimer()
	}
	b.ReportMetric(float64(alloc), "allocated-bytes")
}
