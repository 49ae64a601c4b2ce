// Package testutil holds the gates and helpers shared by banger's test tiers:
// unit tests run anywhere, host tests need root and run inside a throwaway
// network namespace, end-to-end tests need root, QEMU and a bootstrapped guest
// image. Gates skip with a one-line reason; CI runs as root so nothing skips.
package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// RequireRoot skips the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("host tier: needs root (CI runs it as root)")
	}
	if testing.Short() {
		t.Skip("host tier: -short (make test-unit) runs only the tests that need neither root nor a guest")
	}
}

// RequireTool skips the test when a program is not installed.
func RequireTool(t testing.TB, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			if _, err2 := os.Stat("/usr/sbin/" + name); err2 != nil {
				t.Skipf("needs %s, which is not installed (.ci/run installs it)", name)
			}
		}
	}
}

// Short skips slow tests under `go test -short`.
func Short(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("skipped with -short: %s", why)
	}
}
