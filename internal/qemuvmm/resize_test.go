package qemuvmm

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	firecracker "github.com/firecracker-microvm/firecracker-go-sdk"
	"github.com/sirupsen/logrus"
)

// serveSDK serves h's VMM on its API socket and returns a
// firecracker-go-sdk Machine speaking to it, as the daemon's does.
func serveSDK(t *testing.T, h *harness) *firecracker.Machine {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- h.v.Serve(ctx, nil) }()
	t.Cleanup(func() { cancel(); <-done })
	for i := 0; i < 500; i++ {
		if _, err := os.Stat(h.v.cfg.APISock); err == nil {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	log := logrus.NewEntry(logger)
	m, err := firecracker.NewMachine(ctx, firecracker.Config{SocketPath: h.v.cfg.APISock},
		firecracker.WithClient(firecracker.NewClient(h.v.cfg.APISock, log, false)), firecracker.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSDKUpdateGuestDriveResizes drives PATCH /drives through
// firecracker-go-sdk v1.0.0's Machine.UpdateGuestDrive, which is what the
// daemon calls for an online resize.
func TestSDKUpdateGuestDriveResizes(t *testing.T) {
	h := newHarness(t)
	h.configure()
	m := serveSDK(t, h)
	ctx := context.Background()
	work := h.dir + "/work.ext4"

	err := m.UpdateGuestDrive(ctx, "work", work)
	if err == nil || !strings.Contains(err.Error(), "not supported before starting the microVM") {
		t.Errorf("before boot: %v, want Firecracker's pre-boot fault", err)
	}
	h.start()
	if err := os.Truncate(work, 64<<20); err != nil {
		t.Fatal(err)
	}
	if err := m.UpdateGuestDrive(ctx, "work", work); err != nil {
		t.Fatalf("after growing the file: %v", err)
	}
	h.qmp.mu.Lock()
	cmds, args := h.qmp.cmds, h.qmp.args
	h.qmp.mu.Unlock()
	if len(cmds) != 1 || cmds[0] != "block_resize" {
		t.Fatalf("QMP commands %q, want one block_resize", cmds)
	}
	if got := args[0].(map[string]any); got["size"] != int64(64<<20) || got["device"] != "drive1" {
		t.Errorf("block_resize %v, want the work drive (drive1) at 64 MiB", got)
	}
	for _, tc := range []struct{ id, path, want string }{
		{"nope", work, "Unable to patch the block device: drive nope does not exist"},
		{"work", h.dir + "/other.ext4", "Changing the backing file of drive work is not supported"},
	} {
		if err := m.UpdateGuestDrive(ctx, tc.id, tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("UpdateGuestDrive(%s, %s) = %v, want %q", tc.id, tc.path, err, tc.want)
		}
	}
	os.Remove(work)
	if err := m.UpdateGuestDrive(ctx, "work", work); err == nil || !strings.Contains(err.Error(), "Unable to patch the block device") {
		t.Errorf("with the file gone: %v", err)
	}
}
