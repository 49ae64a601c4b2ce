package firecracker

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPauseResumeSnapshotBodies(t *testing.T) {
	dir := shortDir(t)
	socket := filepath.Join(dir, "api.sock")
	api := &fakeAPI{state: string(StateRunning)}
	startFakeAPI(t, api, socket)
	d := New(Deps{})
	ctx := context.Background()
	p := Process{ID: "x", Socket: socket}
	snap := Snapshot{StatePath: filepath.Join(dir, "vm.snap"), MemPath: filepath.Join(dir, "vm.mem")}

	err := d.CreateSnapshot(ctx, p, snap)
	if err == nil || !strings.Contains(err.Error(), "not paused") {
		t.Fatalf("CreateSnapshot of a running vm = %v, want the VMM's fault", err)
	}
	if err := d.Pause(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := d.Resume(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := d.Pause(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateSnapshot(ctx, p, snap); err != nil {
		t.Fatal(err)
	}
	create := apiCall{Method: "PUT", Path: "/snapshot/create", Body: map[string]any{"mem_file_path": snap.MemPath, "snapshot_path": snap.StatePath}}
	want := []apiCall{
		create,
		{Method: "PATCH", Path: "/vm", Body: map[string]any{"state": "Paused"}},
		{Method: "PATCH", Path: "/vm", Body: map[string]any{"state": "Resumed"}},
		{Method: "PATCH", Path: "/vm", Body: map[string]any{"state": "Paused"}},
		create,
	}
	if diff := cmp.Diff(want, api.Calls()); diff != "" {
		t.Errorf("api calls (-want +got):\n%s", diff)
	}
	if err := snap.Remove(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{snap.StatePath, snap.MemPath} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s still exists after Remove: %v", f, err)
		}
	}
}

func TestLoadSendsSnapshotSequence(t *testing.T) {
	api := &fakeAPI{}
	dir, cfg := servedSpec(t, api)
	snap := Snapshot{StatePath: filepath.Join(dir, "vm.snap"), MemPath: filepath.Join(dir, "vm.mem")}
	if err := New(Deps{}).load(context.Background(), cfg, snap, true); err != nil {
		t.Fatal(err)
	}
	want := []apiCall{
		wantBootCalls(dir)[0],
		{Method: "PUT", Path: "/snapshot/load", Body: map[string]any{
			"mem_file_path": snap.MemPath, "snapshot_path": snap.StatePath, "resume_vm": true,
		}},
	}
	if diff := cmp.Diff(want, api.Calls()); diff != "" {
		t.Errorf("api calls (-want +got):\n%s", diff)
	}
}
