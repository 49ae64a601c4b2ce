package qemuvmm

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	firecracker "github.com/firecracker-microvm/firecracker-go-sdk"
	"github.com/google/go-cmp/cmp"
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
		{"work", h.dir + "/other.ext4", "Unable to patch the block device: stat " + h.dir + "/other.ext4: no such file or directory"},
		{"work", h.dir, "is not a regular file"},
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

// TestSDKUpdateGuestDriveMovesTheDrive is PATCH /drives with another
// path_on_host, through the SDK as the daemon calls it for a clone: QEMU
// opens the file as a new node, a sync=none mirror pivots the device onto
// it, the configuration then names the new file, and the guest is told
// its size. A mirror QEMU refuses leaves no node behind.
func TestSDKUpdateGuestDriveMovesTheDrive(t *testing.T) {
	h := newHarness(t)
	h.configure()
	m := serveSDK(t, h)
	ctx := context.Background()
	h.start()
	other := h.dir + "/clone-work.ext4"
	if err := os.WriteFile(other, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(other, 32<<20); err != nil {
		t.Fatal(err)
	}
	polls := 0
	h.qmp.mu.Lock()
	h.qmp.on = map[string]func(any) (json.RawMessage, error){
		"query-block-jobs": func(any) (json.RawMessage, error) {
			polls++
			switch polls {
			case 1:
				return json.RawMessage(`[{"device":"swap-drive1-1","status":"running","ready":false}]`), nil
			case 2:
				return json.RawMessage(`[{"device":"swap-drive1-1","status":"ready","ready":true}]`), nil
			case 3:
				return json.RawMessage(`[{"device":"swap-drive1-1","status":"pending","ready":true}]`), nil
			}
			return json.RawMessage(`[]`), nil
		},
	}
	h.qmp.mu.Unlock()
	if err := m.UpdateGuestDrive(ctx, "work", other); err != nil {
		t.Fatalf("moving the work drive: %v", err)
	}
	want := []string{"blockdev-add", "blockdev-mirror", "query-block-jobs", "query-block-jobs", "job-complete", "query-block-jobs", "query-block-jobs", "block_resize"}
	if diff := cmp.Diff(want, h.qmp.commands()); diff != "" {
		t.Fatalf("QMP commands (-want +got):\n%s", diff)
	}
	h.qmp.mu.Lock()
	add, mirror, resize := h.qmp.args[0], h.qmp.args[1], h.qmp.args[7]
	h.qmp.cmds, h.qmp.args = nil, nil
	h.qmp.mu.Unlock()
	noFlush := map[string]any{"direct": false, "no-flush": true}
	wantAdd := map[string]any{"driver": "raw", "node-name": "drive1-1", "read-only": false, "cache": noFlush,
		"file": map[string]any{"driver": "file", "filename": other, "locking": "off", "cache": noFlush}}
	if diff := cmp.Diff(wantAdd, add); diff != "" {
		t.Errorf("blockdev-add (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"job-id": "swap-drive1-1", "device": "drive1", "target": "drive1-1", "sync": "none"}, mirror); diff != "" {
		t.Errorf("blockdev-mirror (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"device": "drive1", "size": int64(32 << 20)}, resize); diff != "" {
		t.Errorf("block_resize (-want +got):\n%s", diff)
	}
	if got := h.must(200, "GET", "/vm/config", ""); !strings.Contains(got, `"path_on_host":"`+other+`"`) {
		t.Errorf("GET /vm/config after the move does not name %s: %s", other, got)
	}

	h.qmp.mu.Lock()
	h.qmp.fail = map[string]error{"blockdev-mirror": &QMPError{Class: "GenericError", Desc: "no space"}}
	h.qmp.mu.Unlock()
	err := m.UpdateGuestDrive(ctx, "work", h.dir+"/work.ext4")
	if err == nil || !strings.Contains(err.Error(), "moving drive work to "+h.dir+"/work.ext4") || !strings.Contains(err.Error(), "no space") {
		t.Errorf("refused mirror: %v", err)
	}
	if diff := cmp.Diff([]string{"blockdev-add", "blockdev-mirror", "blockdev-del"}, h.qmp.commands()); diff != "" {
		t.Errorf("QMP commands of a refused mirror (-want +got):\n%s", diff)
	}
}

// TestPatchReadOnlyDriveSamePath: Firecracker accepts PATCH /drives with
// the same path on a read-only drive (a clone's restore sends it for the
// shared base); QEMU refuses to resize a read-only image, so the VMM asks
// it nothing.
func TestPatchReadOnlyDriveSamePath(t *testing.T) {
	h := newHarness(t)
	h.configure()
	base := h.file("base.ext4", 1<<20)
	h.must(204, "PUT", "/drives/layer", `{"drive_id":"layer","path_on_host":"`+base+`","is_root_device":false,"is_read_only":true}`)
	h.start()
	h.must(204, "PATCH", "/drives/layer", `{"drive_id":"layer","path_on_host":"`+base+`"}`)
	if cmds := h.qmp.commands(); len(cmds) != 0 {
		t.Errorf("QMP commands for a read-only drive's same path: %q, want none", cmds)
	}
}
