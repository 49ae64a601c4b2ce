package daemon_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"banger/internal/config"
	"banger/internal/image"
	"banger/internal/store"
	"banger/internal/vm"
)

// TestSeedForBenchmark fills a database with stopped VMs for bench/controlplane.sh.
// It runs only when BANGER_BENCH_SEED_VMS is set.
func TestSeedForBenchmark(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv("BANGER_BENCH_SEED_VMS"))
	if err != nil || n <= 0 {
		t.Skip("benchmark helper: set BANGER_BENCH_SEED_VMS=N and the XDG variables to seed a database")
	}
	ctx := context.Background()
	paths := config.DefaultPaths()
	s, err := store.Open(ctx, paths.Database())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	img := &image.Image{ID: "bench-img", Name: "base", Source: image.FromBootstrap, Dir: "/nonexistent", Kernel: "k", Initrd: "i", Rootfs: "r", CreatedAt: time.Now()}
	if err := s.CreateImage(ctx, img); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("b%09d", i)
		v := &vm.VM{ID: id, Name: fmt.Sprintf("vm-%04d", i), State: vm.Stopped, ImageID: img.ID, CPUs: 2, MemoryMiB: 1024, DiskBytes: 8 << 30,
			IP: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), MAC: "02:00:00:00:00:00", TAP: "bg-" + id,
			Dir: paths.VMDataDir(id), StateDir: paths.VMStateDir(id), Socket: paths.VMSocket(id), CreatedAt: time.Now()}
		if err := s.CreateVM(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
}
