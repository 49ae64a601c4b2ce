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
// by itself, and hands a daemon it started itself over to the service. A
// stand-in systemctl starts bangerd as systemd would.
func TestCLIStartsBangerdThroughItsUserUnit(t *testing.T) {
	e := newEnv(t)
	wants := filepath.Join(e.home, "config", "systemd", "user", "default.target.wants")
	for _, dir := range []string{filepath.Join(e.run, "systemd"), wants} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(e.run, "systemd", "private"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fake := t.TempDir()
	calls := filepath.Join(fake, "calls")
	script := `#!/bin/sh
echo "$*" >>` + calls + `
case "$2" in
start) setsid ` + filepath.Join(e.bin, "bangerd") + ` </dev/null >>` + filepath.Join(fake, "bangerd.out") + ` 2>&1 & ;;
*) exit 1 ;;
esac
`
	if err := os.WriteFile(filepath.Join(fake, "systemctl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	e.vars = append(e.vars, "PATH="+fake+":"+os.Getenv("PATH"))
	quiet := *e
	quiet.vars = append(append([]string(nil), e.vars...), "BANGER_NO_AUTOSTART=1")
	pid := func() int { return quiet.status().PID }

	// A daemon the CLI started itself, before the unit was enabled...
	unit := filepath.Join(wants, "bangerd.service")
	e.must("daemon", "start")
	first := pid()
	if got, _ := os.ReadFile(calls); len(got) != 0 {
		t.Errorf("systemctl called with the unit not enabled:\n%s", got)
	}
	// ... is handed over to the service once it is enabled.
	if err := os.WriteFile(unit, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := e.banger("vm", "list")
	if code != 0 || !strings.Contains(errOut, "its systemd user unit is enabled") {
		t.Errorf("vm list with the unit enabled: exit %d, stderr %q", code, errOut)
	}
	if got, _ := os.ReadFile(calls); string(got) != "--user start bangerd.service\n" {
		t.Errorf("systemctl calls:\n%s\nwant one start of bangerd.service", got)
	}
	if second := pid(); second == first || second == 0 {
		t.Errorf("the daemon (pid %d) was not replaced by the service's (pid %d)", first, second)
	}
	// Stopped, it is started through the unit again.
	e.must("daemon", "stop")
	if out := e.must("daemon", "start"); !strings.Contains(out, "bangerd is running") {
		t.Errorf("daemon start: %q", out)
	}
	if got, _ := os.ReadFile(calls); strings.Count(string(got), "--user start bangerd.service\n") != 2 {
		t.Errorf("systemctl calls after stop and start:\n%s", got)
	}
}
