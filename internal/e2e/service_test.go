package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIStartsBangerdThroughItsUserUnit: with a systemd user manager
// (its private socket in XDG_RUNTIME_DIR) and bangerd's unit enabled, the
// CLI starts the daemon with `systemctl --user start bangerd.service`, not
// by itself. A stand-in systemctl starts bangerd as systemd would.
func TestCLIStartsBangerdThroughItsUserUnit(t *testing.T) {
	e := newEnv(t)
	if err := os.MkdirAll(filepath.Join(e.run, "systemd"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.run, "systemd", "private"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fake := t.TempDir()
	calls := filepath.Join(fake, "calls")
	script := `#!/bin/sh
echo "$*" >>` + calls + `
case "$2" in
is-enabled) echo enabled ;;
start) setsid ` + filepath.Join(e.bin, "bangerd") + ` </dev/null >>` + filepath.Join(fake, "bangerd.out") + ` 2>&1 & ;;
*) exit 1 ;;
esac
`
	if err := os.WriteFile(filepath.Join(fake, "systemctl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	e.vars = append(e.vars, "PATH="+fake+":"+os.Getenv("PATH"))
	out := e.must("daemon", "start")
	if !strings.Contains(out, "bangerd is running") {
		t.Errorf("daemon start: %q", out)
	}
	got, _ := os.ReadFile(calls)
	if want := "--user is-enabled bangerd.service\n--user start bangerd.service\n"; string(got) != want {
		t.Errorf("systemctl calls:\n%s\nwant:\n%s", got, want)
	}
	if st := e.status(); st.PID == 0 || st.Service != "" {
		t.Errorf("status after a start through the unit: pid %d, service %q (no real systemd: none)", st.PID, st.Service)
	}
}
