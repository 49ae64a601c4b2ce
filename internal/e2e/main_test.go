package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"banger/internal/testutil"
)

// TestMain lets the test binary double as a VMM that answers Firecracker's
// API at once and boots nothing, for measuring the control plane alone.
// The daemon starts it as `<binary> --api-sock S --id ID` when the
// benchmark sets vmm to this binary and BANGER_E2E_FAKE_VMM=1. Otherwise it
// runs the tests through testutil.Main, which removes the binaries built
// for them, and removes the package TestDebianPackage built.
func TestMain(m *testing.M) {
	if os.Getenv("BANGER_E2E_FAKE_VMM") == "1" && len(os.Args) > 1 && os.Args[1] == "--api-sock" {
		os.Exit(fakeVMM(os.Args[1:]))
	}
	code := testutil.Main(m)
	removeDeb()
	os.Exit(code)
}

func fakeVMM(args []string) int {
	fs := flag.NewFlagSet("fake-vmm", flag.ContinueOnError)
	sock := fs.String("api-sock", "", "")
	id := fs.String("id", "", "")
	if err := fs.Parse(args); err != nil || *sock == "" {
		return 2
	}
	l, err := net.Listen("unix", *sock)
	if err != nil {
		return 1
	}
	defer os.Remove(*sock)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	reply := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/":
			reply(w, map[string]any{"id": *id, "state": "Running", "vmm_version": "1.0.0", "app_name": "Firecracker"})
		case r.Method == http.MethodGet && r.URL.Path == "/machine-config":
			reply(w, map[string]any{"vcpu_count": 1, "mem_size_mib": 128, "smt": false})
		case r.Method == http.MethodGet && r.URL.Path == "/version":
			reply(w, map[string]any{"firecracker_version": "1.0.0"})
		case r.Method == http.MethodPut && r.URL.Path == "/actions":
			var a struct {
				ActionType string `json:"action_type"`
			}
			_ = json.Unmarshal(body, &a)
			w.WriteHeader(http.StatusNoContent)
			if a.ActionType == "SendCtrlAltDel" {
				stop()
			}
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})}
	go func() { <-ctx.Done(); srv.Close() }()
	_ = srv.Serve(l)
	return 0
}
