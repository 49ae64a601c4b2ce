package firecracker

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
)

// apiCall is one request the fake VMM API received.
type apiCall struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Body   any    `json:"body,omitempty"`
}

// fakeAPI is a small stand-in for Firecracker's API: the endpoints the
// driver uses, Firecracker's status codes and fault bodies, and a record of
// every call.
type fakeAPI struct {
	// failPrefix makes requests whose path starts with it fail with 400.
	failPrefix string
	// record, if set, gets every call as a JSON line as it arrives.
	record io.Writer
	// console gets a line when the guest "boots".
	console io.Writer
	// onCtrlAltDel runs after a SendCtrlAltDel has been answered.
	onCtrlAltDel func()

	mu      sync.Mutex
	calls   []apiCall
	state   string
	machine json.RawMessage
}

func (f *fakeAPI) Calls() []apiCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]apiCall(nil), f.calls...)
}

func fault(w http.ResponseWriter, code int, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"fault_message": fmt.Sprintf(format, args...)})
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		fault(w, 400, "reading body: %v", err)
		return
	}
	call := apiCall{Method: r.Method, Path: r.URL.Path}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &call.Body); err != nil {
			fault(w, 400, "An error occurred when deserializing the json body of a request: %v", err)
			return
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	if f.record != nil {
		line, _ := json.Marshal(call)
		_, _ = f.record.Write(append(line, '\n'))
	}
	if f.state == "" {
		f.state = string(StateNotStarted)
	}
	if f.failPrefix != "" && strings.HasPrefix(call.Path, f.failPrefix) {
		fault(w, 400, "fake failure for %s", call.Path)
		return
	}
	body, _ := call.Body.(map[string]any)
	notStarted := f.state == string(StateNotStarted)
	switch {
	case r.Method == http.MethodGet && call.Path == "/":
		reply(w, map[string]any{"id": "fake", "state": f.state, "vmm_version": "1.7.0", "app_name": "Firecracker"})
	case r.Method == http.MethodGet && call.Path == "/version":
		reply(w, map[string]any{"firecracker_version": "1.7.0"})
	case r.Method == http.MethodGet && call.Path == "/machine-config":
		if f.machine == nil {
			reply(w, map[string]any{"vcpu_count": 1, "mem_size_mib": 128, "smt": false})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(f.machine)
	case r.Method == http.MethodPut && call.Path == "/machine-config":
		if !notStarted {
			fault(w, 400, "The requested operation is not supported after starting the microVM.")
			return
		}
		f.machine = raw
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPut && call.Path == "/logger":
		path, _ := body["log_path"].(string)
		lf, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			fault(w, 400, "Cannot initialize logging system: %v", err)
			return
		}
		fmt.Fprintln(lf, "fake vmm: logger configured")
		lf.Close()
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPut && (call.Path == "/boot-source" ||
		strings.HasPrefix(call.Path, "/drives/") || strings.HasPrefix(call.Path, "/network-interfaces/")):
		if !notStarted {
			fault(w, 400, "The requested operation is not supported after starting the microVM.")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPatch && strings.HasPrefix(call.Path, "/drives/"):
		// Firecracker: updating a drive is only valid after the boot.
		if notStarted {
			fault(w, 400, "The requested operation is not supported before starting the microVM.")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPut && call.Path == "/actions":
		switch body["action_type"] {
		case "InstanceStart":
			if !notStarted {
				fault(w, 400, "The requested operation is not supported after starting the microVM.")
				return
			}
			f.state = string(StateRunning)
			if f.console != nil {
				fmt.Fprintln(f.console, "fake console: guest booted")
			}
			w.WriteHeader(http.StatusNoContent)
		case "SendCtrlAltDel":
			if notStarted {
				fault(w, 400, "The requested operation is not supported before starting the microVM.")
				return
			}
			w.WriteHeader(http.StatusNoContent)
			if f.onCtrlAltDel != nil {
				go f.onCtrlAltDel()
			}
		default:
			fault(w, 400, "unknown action %v", body["action_type"])
		}
	case r.Method == http.MethodPatch && call.Path == "/vm":
		if notStarted {
			fault(w, 400, "The requested operation is not supported before starting the microVM.")
			return
		}
		if body["state"] == "Paused" {
			f.state = string(StatePaused)
		} else {
			f.state = string(StateRunning)
		}
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPut && call.Path == "/snapshot/create":
		if f.state != string(StatePaused) {
			fault(w, 400, "Cannot create a snapshot: the microVM is not paused.")
			return
		}
		for _, k := range []string{"snapshot_path", "mem_file_path"} {
			p, _ := body[k].(string)
			_ = os.WriteFile(p, []byte(k), 0o600)
		}
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPut && call.Path == "/snapshot/load":
		if !notStarted {
			fault(w, 400, "Loading a microVM snapshot not allowed after starting the microVM.")
			return
		}
		f.state = string(StatePaused)
		if body["resume_vm"] == true {
			f.state = string(StateRunning)
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		fault(w, 400, "Invalid request method and/or path: %s %s.", r.Method, call.Path)
	}
}

// serve serves the fake API on a unix socket until the returned stop runs.
func (f *fakeAPI) serve(socket string) (stop func(), err error) {
	l, err := net.Listen("unix", socket)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: f}
	go func() { _ = srv.Serve(l) }()
	return func() { _ = srv.Close() }, nil
}

// startFakeAPI serves a fake API in the test process.
func startFakeAPI(t *testing.T, f *fakeAPI, socket string) {
	t.Helper()
	stop, err := f.serve(socket)
	if err != nil {
		t.Fatalf("serving fake api: %v", err)
	}
	t.Cleanup(stop)
}
