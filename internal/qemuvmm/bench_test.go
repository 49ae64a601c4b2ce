package qemuvmm

import (
	"context"
	"io"
	"os"
	"slices"
	"testing"
	"time"

	firecracker "github.com/firecracker-microvm/firecracker-go-sdk"
	"github.com/firecracker-microvm/firecracker-go-sdk/client/models"
	"github.com/sirupsen/logrus"
)

// BenchmarkAPICalls measures each API call through firecracker-go-sdk's
// client over the real unix socket, with QEMU replaced by a fake (the
// post-boot calls reach a fake QMP). It reports the median per call as
// p50-µs; the target is ≤ 1000 µs for every call except InstanceStart.
func BenchmarkAPICalls(b *testing.B) {
	dir, err := os.MkdirTemp("", "bvqb")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	h := newHarness(b)
	h.dir = dir
	h.v.cfg.APISock = dir + "/api.sock"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- h.v.Serve(ctx, nil) }()
	defer func() { cancel(); <-done }()
	for i := 0; i < 500; i++ {
		if _, err := os.Stat(h.v.cfg.APISock); err == nil {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	c := firecracker.NewClient(h.v.cfg.APISock, logrus.NewEntry(logger), false)
	kernel, rootfs := h.file("vmlinuz", 10), h.file("root.ext4", 1<<20)

	calls := []struct {
		name string
		fn   func() error
	}{
		{"GetMachineConfiguration", func() error { _, err := c.GetMachineConfiguration(); return err }},
		{"PutMachineConfiguration", func() error {
			_, err := c.PutMachineConfiguration(ctx, &models.MachineConfiguration{VcpuCount: firecracker.Int64(2), MemSizeMib: firecracker.Int64(512)})
			return err
		}},
		{"PutGuestBootSource", func() error {
			_, err := c.PutGuestBootSource(ctx, &models.BootSource{KernelImagePath: &kernel, BootArgs: "console=ttyS0"})
			return err
		}},
		{"PutGuestDriveByID", func() error {
			_, err := c.PutGuestDriveByID(ctx, "rootfs", &models.Drive{DriveID: firecracker.String("rootfs"), PathOnHost: &rootfs,
				IsRootDevice: firecracker.Bool(true), IsReadOnly: firecracker.Bool(false)})
			return err
		}},
		{"PutGuestNetworkInterfaceByID", func() error {
			_, err := c.PutGuestNetworkInterfaceByID(ctx, "1", &models.NetworkInterface{IfaceID: firecracker.String("1"),
				HostDevName: firecracker.String("tap0"), GuestMac: "06:00:0a:00:00:02"})
			return err
		}},
		{"PutMmds", func() error {
			_, err := c.PutMmds(ctx, map[string]any{"latest": map[string]any{"id": "x"}})
			return err
		}},
		{"GetMmds", func() error { _, err := c.GetMmds(ctx); return err }},
		{"GetInstanceInfo", func() error { _, err := c.GetInstanceInfo(ctx); return err }},
		{"GetFirecrackerVersion", func() error { _, err := c.GetFirecrackerVersion(ctx); return err }},
	}
	post := []struct {
		name string
		fn   func() error
	}{
		{"PatchVMPause", func() error {
			_, err := c.PatchVM(ctx, &models.VM{State: firecracker.String(models.VMStatePaused)})
			return err
		}},
		{"PatchVMResume", func() error {
			_, err := c.PatchVM(ctx, &models.VM{State: firecracker.String(models.VMStateResumed)})
			return err
		}},
		{"PatchGuestDriveByID", func() error { _, err := c.PatchGuestDriveByID(ctx, "rootfs", rootfs); return err }},
		{"SendCtrlAltDel", func() error {
			_, err := c.CreateSyncAction(ctx, &models.InstanceActionInfo{ActionType: firecracker.String(models.InstanceActionInfoActionTypeSendCtrlAltDel)})
			return err
		}},
	}
	measure := func(b *testing.B, fn func() error) {
		durs := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			if err := fn(); err != nil {
				b.Fatal(err)
			}
			durs = append(durs, time.Since(t0))
		}
		b.StopTimer()
		slices.Sort(durs)
		b.ReportMetric(float64(durs[len(durs)/2].Microseconds()), "p50-µs")
	}
	for _, call := range calls {
		b.Run(call.name, func(b *testing.B) { measure(b, call.fn) })
	}
	start := firecracker.String(models.InstanceActionInfoActionTypeInstanceStart)
	if _, err := c.CreateSyncAction(ctx, &models.InstanceActionInfo{ActionType: start}); err != nil {
		b.Fatalf("InstanceStart with a fake QEMU: %v", err)
	}
	<-h.v.qmpReady
	for _, call := range post {
		b.Run(call.name, func(b *testing.B) { measure(b, call.fn) })
	}
}
