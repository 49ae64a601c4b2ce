package qemuvmm

import (
	"bufio"
	"context"
	"net"
	"syscall"
	"time"

	"banger/internal/system"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func faultOf(t *testing.T, body string) string {
	t.Helper()
	var f Fault
	if err := json.Unmarshal([]byte(body), &f); err != nil || f.FaultMessage == "" {
		t.Fatalf("body %q is not a Firecracker fault: %v", body, err)
	}
	return f.FaultMessage
}

func TestInstanceInfoAndVersion(t *testing.T) {
	h := newHarness(t)
	var info InstanceInfo
	if err := json.Unmarshal([]byte(h.must(200, "GET", "/", "")), &info); err != nil {
		t.Fatal(err)
	}
	want := InstanceInfo{AppName: "Firecracker", ID: "vm1", State: StateNotStarted, VmmVersion: Version}
	if diff := cmp.Diff(want, info); diff != "" {
		t.Errorf("GET / (-want +got):\n%s", diff)
	}
	if got := h.must(200, "GET", "/version", ""); !strings.Contains(got, `"firecracker_version":"`+Version+`"`) {
		t.Errorf("GET /version = %s", got)
	}
}

func TestMachineConfig(t *testing.T) {
	h := newHarness(t)
	h.must(204, "PUT", "/machine-config", `{"vcpu_count":2,"mem_size_mib":256}`)
	h.must(204, "PATCH", "/machine-config", `{"mem_size_mib":1024}`)
	got := h.must(200, "GET", "/machine-config", "")
	if want := `{"vcpu_count":2,"mem_size_mib":1024,"smt":false}`; strings.TrimSpace(got) != want {
		t.Errorf("GET /machine-config = %s, want %s", got, want)
	}
	for _, tc := range []struct{ method, body, fault string }{
		{"PUT", `{"vcpu_count":2}`, "missing field `mem_size_mib`"},
		{"PUT", `{"mem_size_mib":2}`, "missing field `vcpu_count`"},
		{"PUT", `{"vcpu_count":33,"mem_size_mib":128}`, "vCPU number is invalid"},
		{"PUT", `{"vcpu_count":3,"mem_size_mib":128,"smt":true}`, "even number"},
		{"PUT", `{"vcpu_count":1,"mem_size_mib":0}`, "memory size"},
		{"PUT", `{"vcpu_count":1,"mem_size_mib":128,"bogus":1}`, "unknown field"},
		{"PUT", ``, "body is empty"},
		{"PUT", `{"vcpu_count":1,`, "deserializing"},
		{"PATCH", `{"vcpu_count":0}`, "vCPU number is invalid"},
		{"PATCH", `{"cpu_template":"Q9"}`, "cpu_template"},
	} {
		code, body := h.do(tc.method, "/machine-config", tc.body)
		if code != 400 || !strings.Contains(faultOf(t, body), tc.fault) {
			t.Errorf("%s %s = %d %s, want 400 containing %q", tc.method, tc.body, code, body, tc.fault)
		}
	}
	if got2 := h.must(200, "GET", "/machine-config", ""); got2 != got {
		t.Errorf("rejected requests changed the config: %s, was %s", got2, got)
	}
}

func TestBadRequestsOnConfigEndpoints(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct{ method, path, body, fault string }{
		{"PUT", "/boot-source", `{"boot_args":"x"}`, "missing field `kernel_image_path`"},
		{"PUT", "/drives/root", `{"drive_id":"other","path_on_host":"/x","is_root_device":true,"is_read_only":false}`, "does not match"},
		{"PUT", "/drives/root", `{"drive_id":"root","is_root_device":true,"is_read_only":false}`, "missing field `path_on_host`"},
		{"PUT", "/drives/root", `{"drive_id":"root","path_on_host":"/x","is_root_device":true,"is_read_only":false,"cache_type":"Fast"}`, "cache_type"},
		{"PUT", "/drives/a-b", `{"drive_id":"a-b","path_on_host":"/x","is_root_device":true,"is_read_only":false}`, "invalid id"},
		{"PUT", "/network-interfaces/1", `{"iface_id":"1"}`, "missing field `host_dev_name`"},
		{"PUT", "/network-interfaces/1", `{"iface_id":"1","host_dev_name":"tap0","guest_mac":"zz"}`, "guest_mac"},
		{"PUT", "/network-interfaces/1", `{"iface_id":"2","host_dev_name":"tap0"}`, "does not match"},
		{"PUT", "/logger", `{"level":"Info"}`, "missing field `log_path`"},
		{"PUT", "/logger", `{"log_path":"/tmp/x","level":"Loud"}`, "unknown log level"},
		{"PUT", "/metrics", `{}`, "missing field `metrics_path`"},
		{"PUT", "/vsock", `{"guest_cid":2,"uds_path":"/tmp/v.sock"}`, "at least 3"},
		{"PUT", "/mmds/config", `{"network_interfaces":["9"]}`, "does not correspond"},
		{"PUT", "/actions", `{"action_type":"Reboot"}`, "unknown action_type"},
		{"PUT", "/actions", `{"action_type":"SendCtrlAltDel"}`, "not supported before starting"},
		{"PUT", "/actions", `{"action_type":"FlushMetrics"}`, "metrics are not configured"},
		{"PUT", "/actions", `{"action_type":"InstanceStart"}`, "configure /boot-source first"},
		{"PATCH", "/vm", `{"state":"Paused"}`, "not supported before starting"},
		{"PATCH", "/drives/root", `{"drive_id":"root","path_on_host":"/x"}`, "not supported before starting"},
		{"PUT", "/snapshot/create", `{"mem_file_path":"/a","snapshot_path":"/b"}`, "not supported before starting"},
		{"PUT", "/snapshot/load", `{}`, "missing field `snapshot_path`"},
		{"GET", "/balloon", ``, "Balloon devices are not supported"},
		{"GET", "/nonsense", ``, "Invalid request method and/or path: GET /nonsense."},
		{"DELETE", "/machine-config", ``, "Invalid request method and/or path: DELETE /machine-config."},
	} {
		code, body := h.do(tc.method, tc.path, tc.body)
		if code != 400 {
			t.Errorf("%s %s %s = %d %s, want 400", tc.method, tc.path, tc.body, code, body)
			continue
		}
		if got := faultOf(t, body); !strings.Contains(got, tc.fault) {
			t.Errorf("%s %s %s: fault %q, want it to contain %q", tc.method, tc.path, tc.body, got, tc.fault)
		}
	}
}

func TestSecondRootDriveRejectedAndReplaceAllowed(t *testing.T) {
	h := newHarness(t)
	h.must(204, "PUT", "/drives/a", `{"drive_id":"a","path_on_host":"/a","is_root_device":true,"is_read_only":false}`)
	code, body := h.do("PUT", "/drives/b", `{"drive_id":"b","path_on_host":"/b","is_root_device":true,"is_read_only":false}`)
	if code != 400 || !strings.Contains(faultOf(t, body), "root block device already exists") {
		t.Errorf("second root drive: %d %s", code, body)
	}
	// Replacing the same id keeps its position and is allowed.
	h.must(204, "PUT", "/drives/a", `{"drive_id":"a","path_on_host":"/a2","is_root_device":true,"is_read_only":true}`)
	h.must(204, "PUT", "/network-interfaces/1", `{"iface_id":"1","host_dev_name":"tap0"}`)
	code, body = h.do("PUT", "/network-interfaces/2", `{"iface_id":"2","host_dev_name":"tap0"}`)
	if code != 400 || !strings.Contains(faultOf(t, body), "already in use") {
		t.Errorf("duplicate tap: %d %s", code, body)
	}
	var cfg fullConfig
	if err := json.Unmarshal([]byte(h.must(200, "GET", "/vm/config", "")), &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Drives) != 1 || *cfg.Drives[0].PathOnHost != "/a2" || len(cfg.NetworkInterfaces) != 1 {
		t.Errorf("GET /vm/config = %+v", cfg)
	}
}

func TestInstanceStartLaunchesQEMU(t *testing.T) {
	h := newHarness(t)
	h.configure()
	h.start()
	spec := h.spec()
	if !spec.NewSession || !spec.DieWithParent {
		t.Errorf("spec = %+v, want own session and parent-death signal", spec)
	}
	argv := strings.Join(spec.Argv, " ")
	for _, want := range []string{
		"-M microvm,acpi=on,x-option-roms=off",
		"-accel tcg,tb-size=64",
		"-m 512M -smp 2",
		"-append console=ttyS0 reboot=k panic=1 root=/dev/vda rw tsc_early_khz=2596138 tsc=reliable",
		// The root drive comes first (/dev/vda) although it was added second.
		"-drive id=drive0,file=" + h.dir + "/root.ext4,format=raw,if=none,cache=unsafe,file.locking=off -device virtio-blk-device,drive=drive0 " +
			"-drive id=drive1,file=" + h.dir + "/work.ext4",
		"-netdev tap,id=net0,ifname=tap-vm1,script=no,downscript=no -device virtio-net-device,netdev=net0,mac=06:00:ac:10:00:02",
		"-qmp unix:" + h.dir + "/api.sock.qmp,server=on,wait=off",
	} {
		if !strings.Contains(argv, want) {
			t.Errorf("argv lacks %q:\n%s", want, argv)
		}
	}
	if got := h.must(200, "GET", "/", ""); !strings.Contains(got, `"state":"Running"`) {
		t.Errorf("GET / after start = %s", got)
	}
	// Pre-boot-only calls are refused now, as Firecracker refuses them.
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/machine-config", `{"vcpu_count":1,"mem_size_mib":128}`},
		{"PATCH", "/machine-config", `{"vcpu_count":1}`},
		{"PUT", "/boot-source", `{"kernel_image_path":"/k"}`},
		{"PUT", "/drives/x", `{"drive_id":"x","path_on_host":"/x","is_root_device":false,"is_read_only":false}`},
		{"PUT", "/network-interfaces/2", `{"iface_id":"2","host_dev_name":"tap2"}`},
		{"PUT", "/logger", `{"log_path":"` + h.dir + `/l"}`},
		{"PUT", "/metrics", `{"metrics_path":"` + h.dir + `/m"}`},
		{"PUT", "/vsock", `{"guest_cid":3,"uds_path":"/v"}`},
		{"PUT", "/mmds/config", `{"network_interfaces":["1"]}`},
		{"PUT", "/actions", `{"action_type":"InstanceStart"}`},
	} {
		code, body := h.do(c.method, c.path, c.body)
		if code != 400 || faultOf(t, body) != errPostBoot.msg {
			t.Errorf("%s %s after start = %d %s, want 400 %q", c.method, c.path, code, body, errPostBoot.msg)
		}
	}
}

func TestInstanceStartReportsQEMUFailure(t *testing.T) {
	h := newHarness(t)
	h.configure()
	h.v.deps.DialQMP = func(ctx context.Context, path string) (Controller, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	h.v.stderr.Write([]byte("qemu-system-x86_64: could not open tap-vm1: No such device\n"))
	h.proc.exit(system.ExitStatus{Code: 1})
	code, body := h.do("PUT", "/actions", `{"action_type":"InstanceStart"}`)
	if code != 400 || !strings.Contains(faultOf(t, body), "could not open tap-vm1") {
		t.Errorf("InstanceStart with failing qemu = %d %s", code, body)
	}

	h2 := newHarness(t)
	h2.configure()
	h2.startE = &system.CommandError{Argv: []string{"qemu"}, Err: os.ErrNotExist}
	code, body = h2.do("PUT", "/actions", `{"action_type":"InstanceStart"}`)
	if code != 400 || !strings.Contains(faultOf(t, body), "apt-get install qemu-system-x86") {
		t.Errorf("InstanceStart without qemu = %d %s", code, body)
	}

	h3 := newHarness(t)
	h3.configure()
	h3.must(204, "PUT", "/drives/gone", `{"drive_id":"gone","path_on_host":"/nonexistent/disk","is_root_device":false,"is_read_only":true}`)
	code, body = h3.do("PUT", "/actions", `{"action_type":"InstanceStart"}`)
	if code != 400 || !strings.Contains(faultOf(t, body), "drive gone is not usable") {
		t.Errorf("InstanceStart with missing drive = %d %s", code, body)
	}
}

func TestRuntimeActionsUseQMP(t *testing.T) {
	h := newHarness(t)
	h.configure()
	h.start()
	h.must(204, "PATCH", "/vm", `{"state":"Paused"}`)
	if got := h.must(200, "GET", "/", ""); !strings.Contains(got, `"state":"Paused"`) {
		t.Errorf("GET / after pause = %s", got)
	}
	h.must(204, "PATCH", "/vm", `{"state":"Resumed"}`)
	code, body := h.do("PATCH", "/vm", `{"state":"Frozen"}`)
	if code != 400 || !strings.Contains(faultOf(t, body), "Frozen") {
		t.Errorf("PATCH /vm Frozen = %d %s", code, body)
	}
	// Grow the root disk and tell the VMM: it resizes the device to the file size.
	if err := os.Truncate(h.dir+"/root.ext4", 4<<20); err != nil {
		t.Fatal(err)
	}
	h.must(204, "PATCH", "/drives/rootfs", `{"drive_id":"rootfs","path_on_host":"`+h.dir+`/root.ext4"}`)
	code, body = h.do("PATCH", "/drives/rootfs", `{"drive_id":"rootfs","path_on_host":"/elsewhere"}`)
	if code != 400 || !strings.Contains(faultOf(t, body), "stat /elsewhere: no such file or directory") {
		t.Errorf("PATCH drive to another path = %d %s", code, body)
	}
	code, body = h.do("PATCH", "/drives/nope", `{"drive_id":"nope","path_on_host":"/x"}`)
	if code != 400 || !strings.Contains(faultOf(t, body), "does not exist") {
		t.Errorf("PATCH unknown drive = %d %s", code, body)
	}
	h.must(204, "PATCH", "/network-interfaces/1", `{"iface_id":"1","rx_rate_limiter":{"bandwidth":{"size":1000,"refill_time":100}}}`)
	h.must(204, "PUT", "/actions", `{"action_type":"SendCtrlAltDel"}`)

	want := []string{"stop", "cont", "announce-self", "block_resize", "system_powerdown"}
	if diff := cmp.Diff(want, h.qmp.commands()); diff != "" {
		t.Errorf("QMP commands (-want +got):\n%s", diff)
	}
	h.qmp.mu.Lock()
	resize := h.qmp.args[3]
	h.qmp.mu.Unlock()
	if diff := cmp.Diff(map[string]any{"device": "drive0", "size": int64(4 << 20)}, resize); diff != "" {
		t.Errorf("block_resize arguments (-want +got):\n%s", diff)
	}

	h.qmp.mu.Lock()
	h.qmp.fail = map[string]error{"system_powerdown": &QMPError{Class: "GenericError", Desc: "boom"}}
	h.qmp.mu.Unlock()
	code, body = h.do("PUT", "/actions", `{"action_type":"SendCtrlAltDel"}`)
	if code != 400 || !strings.Contains(faultOf(t, body), "boom") {
		t.Errorf("failing QMP command = %d %s", code, body)
	}
}

func TestMMDSStoreAndMergePatch(t *testing.T) {
	h := newHarness(t)
	if got := strings.TrimSpace(h.must(200, "GET", "/mmds", "")); got != "{}" {
		t.Errorf("empty MMDS = %s", got)
	}
	h.must(204, "PUT", "/mmds", `{"latest":{"meta-data":{"host":"a","zone":"z"}},"drop":1}`)
	h.must(204, "PATCH", "/mmds", `{"latest":{"meta-data":{"host":"b","zone":null}},"drop":null,"new":true}`)
	var got any
	if err := json.Unmarshal([]byte(h.must(200, "GET", "/mmds", "")), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"latest": map[string]any{"meta-data": map[string]any{"host": "b"}}, "new": true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("MMDS after patch (-want +got):\n%s", diff)
	}
	h.must(204, "PUT", "/network-interfaces/eth0", `{"iface_id":"eth0","host_dev_name":"tap0"}`)
	h.must(204, "PUT", "/mmds/config", `{"network_interfaces":["eth0"],"version":"V2","ipv4_address":"169.254.169.254"}`)
}

func TestLoggerAndMetricsFiles(t *testing.T) {
	h := newHarness(t)
	logPath, metPath := h.dir+"/vmm.log", h.dir+"/metrics.json"
	h.must(204, "PUT", "/logger", `{"log_path":"`+logPath+`","level":"Debug","show_level":true,"show_log_origin":false}`)
	h.must(204, "PUT", "/metrics", `{"metrics_path":"`+metPath+`"}`)
	h.must(204, "PUT", "/vsock", `{"guest_cid":3,"uds_path":"`+h.dir+`/v.sock"}`)
	h.must(204, "PUT", "/actions", `{"action_type":"FlushMetrics"}`)
	h.configure()
	h.start()
	h.must(204, "PUT", "/actions", `{"action_type":"FlushMetrics"}`)

	logData, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"vsock configured but not provided", "qemu started", "level=INFO"} {
		if !strings.Contains(string(logData), want) {
			t.Errorf("log lacks %q:\n%s", want, logData)
		}
	}
	f, err := os.Open(metPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var states []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m metricsLine
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("metrics line %q: %v", sc.Text(), err)
		}
		if m.UTCTimestampMs == 0 || m.APIServer.Requests == 0 {
			t.Errorf("metrics line lacks timestamp or request count: %s", sc.Text())
		}
		states = append(states, m.VMM.State)
	}
	if diff := cmp.Diff([]string{StateNotStarted, StateRunning}, states); diff != "" {
		t.Errorf("metrics states (-want +got):\n%s", diff)
	}
}

func TestServeExitCodes(t *testing.T) {
	short := func(t *testing.T) *harness {
		h := newHarness(t)
		// Unix socket paths must stay short; t.TempDir can be long.
		dir, err := os.MkdirTemp("", "bvq")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		h.v.cfg.APISock = dir + "/api.sock"
		return h
	}
	t.Run("guest powers off", func(t *testing.T) {
		h := short(t)
		h.configure()
		done := make(chan int, 1)
		go func() { done <- h.v.Serve(context.Background(), nil) }()
		waitSocket(t, h.v.cfg.APISock)
		h.start()
		h.proc.exit(system.ExitStatus{Code: 0})
		if code := <-done; code != ExitGuestStopped {
			t.Errorf("exit code = %d, want %d", code, ExitGuestStopped)
		}
		if _, err := os.Stat(h.v.cfg.APISock); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("API socket survives: %v", err)
		}
	})
	t.Run("qemu crashes", func(t *testing.T) {
		h := short(t)
		h.configure()
		done := make(chan int, 1)
		go func() { done <- h.v.Serve(context.Background(), nil) }()
		waitSocket(t, h.v.cfg.APISock)
		h.start()
		h.proc.exit(system.ExitStatus{Code: -1, Signal: syscall.SIGSEGV})
		if code := <-done; code != ExitError {
			t.Errorf("exit code = %d, want %d", code, ExitError)
		}
	})
	t.Run("SIGTERM", func(t *testing.T) {
		h := short(t)
		h.configure()
		sig := make(chan os.Signal, 1)
		done := make(chan int, 1)
		go func() { done <- h.v.Serve(context.Background(), sig) }()
		waitSocket(t, h.v.cfg.APISock)
		h.start()
		sig <- syscall.SIGTERM
		if code := <-done; code != 128+int(syscall.SIGTERM) {
			t.Errorf("exit code = %d, want %d", code, 128+int(syscall.SIGTERM))
		}
		h.proc.mu.Lock()
		defer h.proc.mu.Unlock()
		if len(h.proc.signals) == 0 || h.proc.signals[0] != syscall.SIGTERM {
			t.Errorf("qemu got signals %v, want SIGTERM", h.proc.signals)
		}
	})
	t.Run("SIGINT before start", func(t *testing.T) {
		h := short(t)
		sig := make(chan os.Signal, 1)
		done := make(chan int, 1)
		go func() { done <- h.v.Serve(context.Background(), sig) }()
		waitSocket(t, h.v.cfg.APISock)
		sig <- syscall.SIGINT
		if code := <-done; code != 130 {
			t.Errorf("exit code = %d, want 130", code)
		}
	})
}

func waitSocket(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("socket %s never appeared", path)
}

func TestMergePatchReplacesNonObjects(t *testing.T) {
	got := mergePatch(map[string]any{"a": []any{1.0}}, map[string]any{"a": map[string]any{"b": 1.0}})
	if diff := cmp.Diff(map[string]any{"a": map[string]any{"b": 1.0}}, got); diff != "" {
		t.Error(diff)
	}
	if got := mergePatch(map[string]any{"a": 1.0}, []any{"x"}); !slices.Equal(got.([]any), []any{"x"}) {
		t.Errorf("array patch = %v", got)
	}
}
