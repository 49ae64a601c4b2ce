package qemuvmm

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"banger/internal/testutil"
)

// FuzzAPI sends arbitrary requests to banger-vmm-qemu's Firecracker API
// (fake QEMU and QMP), each to a fresh VMM after a valid configuration, and
// checks what the firecracker SDK relies on: no panic, no 5xx, and every
// refusal a Firecracker fault with a message.
func FuzzAPI(f *testing.F) {
	for _, s := range []struct{ method, path, body string }{
		{"PUT", "/machine-config", `{"vcpu_count":2,"mem_size_mib":256}`},
		{"PATCH", "/machine-config", `{"vcpu_count":-1,"mem_size_mib":1e30}`},
		{"PUT", "/boot-source", `{"kernel_image_path":"/nonexistent","boot_args":"console=ttyS0"}`},
		{"PUT", "/drives/root", `{"drive_id":"root","path_on_host":"/dev/null","is_root_device":true,"is_read_only":false}`},
		{"PATCH", "/drives/work", `{"drive_id":"work","path_on_host":"../../etc/passwd"}`},
		{"PUT", "/network-interfaces/eth0", `{"iface_id":"eth0","host_dev_name":"tap0","guest_mac":"zz:zz"}`},
		{"PUT", "/actions", `{"action_type":"InstanceStart"}`},
		{"PUT", "/actions", `{"action_type":"SendCtrlAltDel"}`},
		{"PUT", "/mmds", `{"a":{"b":[1,2,3]}}`},
		{"PATCH", "/mmds", `null`},
		{"PATCH", "/vm", `{"state":"Paused"}`},
		{"PUT", "/snapshot/create", `{}`},
		{"GET", "/vm/config", ``},
		{"DELETE", "/", ``},
	} {
		f.Add(s.method, s.path, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, method, path string, body []byte) {
		// The logger, metrics and vsock routes open or create the host path
		// the request names, as Firecracker's do: fuzzing them would write
		// anywhere.
		req := testutil.FuzzRequest(t, context.Background(), method, path, body, "logger", "metrics", "vsock")
		h := newHarness(t)
		h.must(204, "PUT", "/machine-config", `{"vcpu_count":1,"mem_size_mib":128}`)
		rec := httptest.NewRecorder()
		h.v.Handler().ServeHTTP(rec, req)
		what := method + " " + path + " " + string(body)
		switch {
		case rec.Code >= 500:
			t.Fatalf("%s: status %d: %s", what, rec.Code, rec.Body)
		case rec.Code >= 300 && rec.Code < 400:
			// The mux cleans paths by redirecting.
		case rec.Code >= 400:
			var fault Fault
			if err := json.Unmarshal(rec.Body.Bytes(), &fault); err != nil || fault.FaultMessage == "" {
				t.Fatalf("%s: status %d with %q, not a Firecracker fault", what, rec.Code, rec.Body)
			}
		}
	})
}
