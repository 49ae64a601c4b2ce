package firecracker

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	sdk "github.com/firecracker-microvm/firecracker-go-sdk"
	"github.com/google/go-cmp/cmp"
)

// shortDir returns a temporary directory with a path short enough for unix
// sockets, removed after the test.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "fc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// testSpec is a spec whose paths live in dir; the kernel and drive files
// exist (empty).
func testSpec(dir string) Spec {
	s := sampleSpec()
	s.Binary = ""
	s.Socket = filepath.Join(dir, "api.sock")
	s.StateDir = filepath.Join(dir, "state")
	s.Kernel = filepath.Join(dir, "vmlinux")
	s.Initrd = ""
	s.RootDrive = filepath.Join(dir, "root.ext4")
	s.WorkDrive = filepath.Join(dir, "work.ext4")
	for _, f := range []string{s.Kernel, s.RootDrive, s.WorkDrive} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			panic(err)
		}
	}
	return s
}

// wantBootCalls is the exact API conversation of a boot of testSpec(dir).
func wantBootCalls(dir string) []apiCall {
	return []apiCall{
		{Method: "PUT", Path: "/logger", Body: map[string]any{
			"log_path": filepath.Join(dir, "state", "vmm.log"), "level": "Info",
			"show_level": true, "show_log_origin": false,
		}},
		{Method: "PUT", Path: "/machine-config", Body: map[string]any{"vcpu_count": 2.0, "mem_size_mib": 1024.0}},
		{Method: "GET", Path: "/machine-config"},
		{Method: "PUT", Path: "/boot-source", Body: map[string]any{
			"kernel_image_path": filepath.Join(dir, "vmlinux"),
			"boot_args":         "console=ttyS0 reboot=k panic=1 root=/dev/vda rw ip=172.30.0.5::172.30.0.1:255.255.255.0:dev:eth0:off:172.30.0.1",
		}},
		{Method: "PUT", Path: "/drives/rootfs", Body: map[string]any{
			"drive_id": "rootfs", "path_on_host": filepath.Join(dir, "root.ext4"),
			"is_root_device": true, "is_read_only": false, "cache_type": "Writeback",
		}},
		{Method: "PUT", Path: "/drives/work", Body: map[string]any{
			"drive_id": "work", "path_on_host": filepath.Join(dir, "work.ext4"),
			"is_root_device": false, "is_read_only": false, "cache_type": "Writeback",
		}},
		{Method: "PUT", Path: "/network-interfaces/1", Body: map[string]any{
			"iface_id": "1", "host_dev_name": "bgr-0a1b2c3d", "guest_mac": "02:fc:0a:1b:2c:3d",
		}},
		{Method: "PUT", Path: "/actions", Body: map[string]any{"action_type": "InstanceStart"}},
	}
}

// servedSpec returns the config of testSpec in a new directory, whose
// state directory exists and whose socket api serves.
func servedSpec(t *testing.T, api *fakeAPI) (string, sdk.Config) {
	t.Helper()
	dir := shortDir(t)
	s := testSpec(dir)
	if err := os.MkdirAll(s.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	startFakeAPI(t, api, s.Socket)
	cfg, err := BuildConfig(s)
	if err != nil {
		t.Fatal(err)
	}
	return dir, cfg
}

func TestConfigureSendsFirecrackerSequence(t *testing.T) {
	api := &fakeAPI{}
	dir, cfg := servedSpec(t, api)
	var logs bytes.Buffer
	d := New(Deps{Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err := d.configure(context.Background(), cfg); err != nil {
		t.Fatalf("configure: %v", err)
	}
	if diff := cmp.Diff(wantBootCalls(dir), api.Calls()); diff != "" {
		t.Errorf("api calls (-want +got):\n%s", diff)
	}
	vmmLog, err := os.ReadFile(cfg.LogPath)
	if err != nil || !strings.Contains(string(vmmLog), "logger configured") {
		t.Errorf("vmm.log = %q, %v; want the fake vmm's line", vmmLog, err)
	}
	// The SDK's logrus output arrives in slog at debug level, tagged.
	if !strings.Contains(logs.String(), "level=DEBUG") || !strings.Contains(logs.String(), "component=firecracker-sdk") ||
		!strings.Contains(logs.String(), "vm=0a1b2c3d") {
		t.Errorf("sdk log not bridged to slog:\n%s", logs.String())
	}
}

func TestConfigureReportsVMMFault(t *testing.T) {
	api := &fakeAPI{failPrefix: "/drives/"}
	_, cfg := servedSpec(t, api)
	err := New(Deps{}).configure(context.Background(), cfg)
	if err == nil {
		t.Fatal("configure succeeded although PUT /drives failed")
	}
	calls := api.Calls()
	last := calls[len(calls)-1]
	if last.Path != "/drives/rootfs" {
		t.Errorf("last call %s %s, want the failing PUT /drives/rootfs", last.Method, last.Path)
	}
	for _, c := range calls {
		if c.Path == "/actions" {
			t.Errorf("InstanceStart sent after a failed step")
		}
	}
}

func TestCtrlAltDelBody(t *testing.T) {
	dir := shortDir(t)
	socket := filepath.Join(dir, "api.sock")
	api := &fakeAPI{state: string(StateRunning)}
	startFakeAPI(t, api, socket)
	d := New(Deps{})
	if err := d.ctrlAltDel(context.Background(), Process{ID: "x", Socket: socket}); err != nil {
		t.Fatal(err)
	}
	want := []apiCall{{Method: "PUT", Path: "/actions", Body: map[string]any{"action_type": "SendCtrlAltDel"}}}
	if diff := cmp.Diff(want, api.Calls()); diff != "" {
		t.Errorf("api calls (-want +got):\n%s", diff)
	}
}

func TestOwnSocket(t *testing.T) {
	dir := shortDir(t)
	socket := filepath.Join(dir, "api.sock")
	d := New(Deps{})
	if ok, err := d.ownSocket(socket); ok || err != nil {
		t.Fatalf("ownSocket of a missing socket = %v, %v; want false, nil", ok, err)
	}
	startFakeAPI(t, &fakeAPI{}, socket)
	if ok, err := d.ownSocket(socket); !ok || err != nil {
		t.Fatalf("ownSocket of the daemon's own socket = %v, %v; want true, nil", ok, err)
	}
	// Pretend the daemon runs as another user than the socket's owner.
	d.uid = os.Geteuid() + 4242
	ok, err := d.ownSocket(socket)
	if ok || err == nil {
		t.Fatalf("ownSocket of another user's socket = %v, %v; want an error", ok, err)
	}
	for _, want := range []string{socket, "owned by uid " + strconv.Itoa(os.Geteuid()), "stop it as that user"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestUpdateDriveBody(t *testing.T) {
	dir := shortDir(t)
	socket := filepath.Join(dir, "api.sock")
	api := &fakeAPI{state: string(StateRunning)}
	startFakeAPI(t, api, socket)
	d := New(Deps{})
	work := filepath.Join(dir, "work.ext4")
	if err := d.UpdateDrive(context.Background(), Process{ID: "x", Socket: socket}, WorkDriveID, work); err != nil {
		t.Fatal(err)
	}
	want := []apiCall{{Method: "PATCH", Path: "/drives/work", Body: map[string]any{"drive_id": "work", "path_on_host": work}}}
	if diff := cmp.Diff(want, api.Calls()); diff != "" {
		t.Errorf("api calls (-want +got):\n%s", diff)
	}
}
