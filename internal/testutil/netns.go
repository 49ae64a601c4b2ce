package testutil

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
)

const netnsEnv = "BANGER_TEST_IN_NETNS"

// InNetns runs the calling test inside a new, private network namespace (and
// mount namespace) that disappears with it. It needs root.
//
// On the first call it re-executes the test binary under `unshare --net
// --mount`, running only this test, relays the child's verdict, and returns
// false: the caller must return at once. Inside the child it brings up
// loopback and returns true, and the test goes on in the namespace. Because
// the namespace belongs to the child process, nothing the test creates in it
// (bridges, TAPs, iptables rules, sysctls) can outlive the test.
//
//	func TestBridge(t *testing.T) {
//		if !testutil.InNetns(t) {
//			return
//		}
//		...
//	}
func InNetns(t *testing.T) bool {
	t.Helper()
	RequireRoot(t)
	if os.Getenv(netnsEnv) == t.Name() {
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			t.Fatalf("bringing up loopback in test netns: %v: %s", err, out)
		}
		return true
	}
	RequireTool(t, "unshare", "ip")
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("finding test binary: %v", err)
	}
	pattern := "^" + strings.ReplaceAll(regexpQuote(t.Name()), "/", "$/^") + "$"
	args := []string{"--net", "--mount", "--propagation", "private", "--", exe, "-test.run", pattern, "-test.v", "-test.count=1"}
	if d, ok := t.Deadline(); ok {
		_ = d // the parent's deadline still bounds the child through its own timer
	}
	cmd := exec.Command("unshare", args...)
	cmd.Env = append(os.Environ(), netnsEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	t.Logf("in network namespace:\n%s", indent(string(out)))
	if err != nil {
		t.Fatalf("test in network namespace failed: %v", err)
	}
	if strings.Contains(string(out), "--- SKIP: "+t.Name()) {
		t.Skip("skipped inside network namespace (see log)")
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("test did not run inside the network namespace (pattern %s)", pattern)
	}
	runtime.KeepAlive(cmd)
	return false
}

func regexpQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\.+*?()|[]{}^$`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
