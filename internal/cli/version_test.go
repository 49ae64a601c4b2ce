package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"banger/internal/daemon/daemontest"
)

// version names the running daemon, the VMM (from its own --version) and
// says why there is no runtime bundle.
func TestVersionReportsDaemonVMMAndBundle(t *testing.T) {
	daemontest.Start(t, nil)
	vmm := filepath.Join(t.TempDir(), "banger-vmm-qemu")
	if err := os.WriteFile(vmm, []byte("#!/bin/sh\necho 'banger-vmm-qemu 9.8.7 (Firecracker API 1.0.0)'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BANGER_VMM", vmm)
	t.Setenv("BANGER_RUNTIME_BUNDLE", filepath.Join(t.TempDir(), "none"))
	out, errOut, code := run(t, "version", "-o", "json")
	if code != 0 {
		t.Fatalf("version: exit %d: %s", code, errOut)
	}
	var r versionReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("version -o json is not JSON: %v\n%s", err, out)
	}
	if r.CLI == "" || r.Daemon == "" || r.DaemonPID == 0 {
		t.Errorf("version does not name the cli and the running daemon: %+v", r)
	}
	if r.VMM != "banger-vmm-qemu 9.8.7 (Firecracker API 1.0.0)" || r.VMMBinary != vmm {
		t.Errorf("vmm = %q (%s), want the fake's version line (%s)", r.VMM, r.VMMBinary, vmm)
	}
	if r.Runtime != "" || r.RuntimeProblem == "" {
		t.Errorf("runtime bundle = %q, problem %q: want none, with the reason", r.Runtime, r.RuntimeProblem)
	}
}
