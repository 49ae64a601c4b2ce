package qemuvmm

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fakeMigration makes the harness's fake QMP behave like QEMU's migration:
// "migrate" connects to the given unix URI and sends state; "migrate-incoming"
// listens on it and keeps what arrives; query-migrate says completed.
type fakeMigration struct {
	mu       sync.Mutex
	received bytes.Buffer
	done     chan struct{}
}

func (h *harness) migrateAs(state string) *fakeMigration {
	m := &fakeMigration{done: make(chan struct{})}
	uri := func(args any) string {
		return strings.TrimPrefix(args.(map[string]any)["uri"].(string), "unix:")
	}
	h.qmp.on = map[string]func(any) (json.RawMessage, error){
		"migrate": func(args any) (json.RawMessage, error) {
			c, err := net.Dial("unix", uri(args))
			if err != nil {
				return nil, err
			}
			_, err = io.WriteString(c, state)
			c.Close()
			return json.RawMessage("{}"), err
		},
		"migrate-incoming": func(args any) (json.RawMessage, error) {
			ln, err := net.Listen("unix", uri(args))
			if err != nil {
				return nil, err
			}
			go func() {
				defer close(m.done)
				defer ln.Close()
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				m.mu.Lock()
				defer m.mu.Unlock()
				_, _ = io.Copy(&m.received, c)
			}()
			return json.RawMessage("{}"), nil
		},
		"query-migrate": func(any) (json.RawMessage, error) {
			return json.RawMessage(`{"status":"completed"}`), nil
		},
	}
	return m
}

func TestSnapshotCreateRefusals(t *testing.T) {
	h := newHarness(t)
	snap, mem := h.dir+"/vm.snap", h.dir+"/vm.mem"
	body := `{"snapshot_path":"` + snap + `","mem_file_path":"` + mem + `"}`
	for _, tc := range []struct{ body, fault string }{
		{body, "not supported before starting"},
		{`{"mem_file_path":"` + mem + `"}`, "missing field `snapshot_path`"},
		{`{"snapshot_path":"` + snap + `"}`, "missing field `mem_file_path`"},
		{`{"snapshot_path":"` + snap + `","mem_file_path":"` + mem + `","snapshot_type":"Diff"}`, "Diff snapshots are not supported"},
		{`{"snapshot_path":"` + snap + `","mem_file_path":"` + mem + `","snapshot_type":"Half"}`, "unknown variant"},
	} {
		code, got := h.do("PUT", "/snapshot/create", tc.body)
		if code != 400 || !strings.Contains(faultOf(t, got), tc.fault) {
			t.Errorf("create %s = %d %s, want 400 with %q", tc.body, code, got, tc.fault)
		}
	}
	h.configure()
	h.start()
	code, got := h.do("PUT", "/snapshot/create", body)
	if code != 400 || !strings.Contains(faultOf(t, got), "pause it first") {
		t.Errorf("create while running = %d %s, want 400 asking for a pause", code, got)
	}
	for _, p := range []string{snap, mem} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("a refused create left %s", p)
		}
	}
}

func TestSnapshotCreateThenLoad(t *testing.T) {
	src := newHarness(t)
	src.migrateAs("DEVICE-STATE")
	src.configure()
	src.start()
	// The guest's memory: one page written at 3 MiB, the rest untouched.
	if _, err := src.v.ram.WriteAt([]byte("guest page"), 3<<20); err != nil {
		t.Fatal(err)
	}
	src.must(204, "PATCH", "/vm", `{"state":"Paused"}`)
	snap, mem := src.dir+"/vm.snap", src.dir+"/vm.mem"
	src.must(204, "PUT", "/snapshot/create", `{"snapshot_path":"`+snap+`","mem_file_path":"`+mem+`","snapshot_type":"Full"}`)
	if cmds := src.qmp.commands(); !slices.Contains(cmds, "migrate-set-capabilities") || !slices.Contains(cmds, "migrate") {
		t.Errorf("qmp commands %v lack the migration", cmds)
	}
	data, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), snapshotMagic) || !strings.HasSuffix(string(data), "\nDEVICE-STATE") {
		t.Errorf("snapshot file = %q, want magic, header, then the device state", data)
	}
	if st, err := os.Stat(mem); err != nil || st.Size() != 512<<20 {
		t.Fatalf("memory file: %v, %v; want 512 MiB", st, err)
	}
	// The VM may go on after a snapshot, as in Firecracker.
	src.must(204, "PATCH", "/vm", `{"state":"Resumed"}`)

	dst := newHarness(t)
	mig := dst.migrateAs("")
	// QEMU reads virtio ring indices from guest RAM while it loads the
	// device state: the memory must be in place by then.
	incoming := dst.qmp.on["migrate-incoming"]
	var atIncoming string
	dst.qmp.on["migrate-incoming"] = func(args any) (json.RawMessage, error) {
		dst.v.mu.Lock()
		ram := dst.v.ram
		dst.v.mu.Unlock()
		page := make([]byte, 10)
		_, _ = ram.ReadAt(page, 3<<20)
		atIncoming = string(page)
		return incoming(args)
	}
	dst.must(204, "PUT", "/logger", `{"log_path":"`+dst.dir+`/vmm.log"}`)
	dst.must(204, "PUT", "/snapshot/load", `{"snapshot_path":"`+snap+`","mem_backend":{"backend_type":"File","backend_path":"`+mem+`"},"resume_vm":true,"network_overrides":[{"iface_id":"1","host_dev_name":"tap-new"}]}`)
	<-mig.done
	if atIncoming != "guest page" {
		t.Errorf("guest memory at migrate-incoming = %q, want it loaded before the device state", atIncoming)
	}
	if got := mig.received.String(); got != "DEVICE-STATE" {
		t.Errorf("qemu was fed %q, want the saved device state", got)
	}
	argv := strings.Join(dst.spec().Argv, " ")
	for _, want := range []string{"-S -incoming defer", "ifname=tap-new", "memory-backend-file,id=ram,size=512M,share=on,mem-path=/proc/self/fd/3", "mac=06:00:ac:10:00:02"} {
		if !strings.Contains(argv, want) {
			t.Errorf("load argv lacks %q: %s", want, argv)
		}
	}
	page := make([]byte, 10)
	if _, err := dst.v.ram.ReadAt(page, 3<<20); err != nil || string(page) != "guest page" {
		t.Errorf("restored memory at 3 MiB = %q, %v; want the guest's page", page, err)
	}
	if cmds := dst.qmp.commands(); !slices.Contains(cmds, "migrate-incoming") || cmds[len(cmds)-1] != "cont" {
		t.Errorf("qmp commands %v: want migrate-incoming, then cont for resume_vm", cmds)
	}
	if got := dst.must(200, "GET", "/", ""); !strings.Contains(got, `"state":"Running"`) {
		t.Errorf("GET / after load = %s, want Running", got)
	}
	if got := dst.must(200, "GET", "/vm/config", ""); !strings.Contains(got, `"host_dev_name":"tap-new"`) {
		t.Errorf("GET /vm/config after load = %s, want the overridden tap", got)
	}
	code, body := dst.do("PUT", "/snapshot/load", `{"snapshot_path":"`+snap+`","mem_file_path":"`+mem+`"}`)
	if code != 400 || !strings.Contains(faultOf(t, body), "after starting") {
		t.Errorf("second load = %d %s, want 400", code, body)
	}
}

func TestSnapshotLoadRefusals(t *testing.T) {
	h := newHarness(t)
	snap, mem := h.file("vm.snap", 100), h.file("vm.mem", 512<<20)
	for _, tc := range []struct{ body, fault string }{
		{`{"mem_file_path":"` + mem + `"}`, "missing field `snapshot_path`"},
		{`{"snapshot_path":"` + snap + `"}`, "Exactly one of mem_file_path and mem_backend"},
		{`{"snapshot_path":"` + snap + `","mem_file_path":"` + mem + `","mem_backend":{"backend_type":"File","backend_path":"` + mem + `"}}`, "Only one of"},
		{`{"snapshot_path":"` + snap + `","mem_backend":{"backend_type":"Uffd","backend_path":"/x.sock"}}`, "Uffd memory backend is not supported"},
		{`{"snapshot_path":"` + snap + `","mem_file_path":"` + mem + `"}`, "not a snapshot made by banger-vmm-qemu"},
		{`{"snapshot_path":"` + h.dir + `/missing","mem_file_path":"` + mem + `"}`, "no such file"},
	} {
		code, got := h.do("PUT", "/snapshot/load", tc.body)
		if code != 400 || !strings.Contains(faultOf(t, got), tc.fault) {
			t.Errorf("load %s = %d %s, want 400 with %q", tc.body, code, got, tc.fault)
		}
	}
	h.must(204, "PUT", "/machine-config", `{"vcpu_count":1,"mem_size_mib":128}`)
	code, got := h.do("PUT", "/snapshot/load", `{"snapshot_path":"`+snap+`","mem_file_path":"`+mem+`"}`)
	if code != 400 || !strings.Contains(faultOf(t, got), "not allowed after configuring boot-specific resources") {
		t.Errorf("load after machine-config = %d %s", code, got)
	}
	if len(h.specs) != 0 {
		t.Errorf("a refused load started qemu: %v", h.specs)
	}
}

func TestCopySparseKeepsHoles(t *testing.T) {
	ram, err := newRAM(4)
	if err != nil {
		t.Fatal(err)
	}
	defer ram.Close()
	if _, err := ram.WriteAt([]byte("x"), 2<<20); err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(t.TempDir() + "/mem")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	n, err := copySparse(out, ram)
	if err != nil {
		t.Fatal(err)
	}
	if n >= 1<<20 {
		t.Errorf("copied %d bytes of a 4 MiB memfd with one written page; holes were copied", n)
	}
	got := make([]byte, 1)
	if _, err := out.ReadAt(got, 2<<20); err != nil || got[0] != 'x' {
		t.Errorf("byte at 2 MiB = %q, %v", got, err)
	}
	if st, _ := out.Stat(); st.Size() != 4<<20 {
		t.Errorf("copy is %d bytes, want 4 MiB", st.Size())
	}
}
