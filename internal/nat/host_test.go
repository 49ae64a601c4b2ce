package nat

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"banger/internal/system"
	"banger/internal/testutil"

	"github.com/google/go-cmp/cmp"
)

// hostSave reads a backend's rules with the real tool, canonically rendered.
func hostSave(t *testing.T, b Backend) string {
	t.Helper()
	out, err := exec.Command("iptables-" + string(b) + "-save").Output()
	if err != nil {
		t.Fatalf("iptables-%s-save: %v", b, err)
	}
	rs, err := ParseSave(out)
	if err != nil {
		t.Fatal(err)
	}
	return rs.Render()
}

func hostRestore(t *testing.T, b Backend, file string) {
	t.Helper()
	cmd := exec.Command("iptables-"+string(b)+"-restore", "--noflush", file)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("seeding %s rules from %s: %v: %s", b, file, err, out)
	}
}

func other(b Backend) Backend {
	if b == NFT {
		return Legacy
	}
	return NFT
}

// testHostUpDown runs Up and Down against the real backend b in the test's
// network namespace, next to Docker's rules, and checks the rules as state.
func testHostUpDown(t *testing.T, b Backend) {
	testutil.RequireTool(t, "iptables-"+string(b)+"-save", "iptables-"+string(b)+"-restore", "sysctl")
	ctx := context.Background()
	hostRestore(t, b, "testdata/docker-"+string(b)+".save")
	before := hostSave(t, b)
	otherBefore := hostSave(t, other(b))

	n, err := New(Config{Backend: b, DNSPort: 42069}, Deps{Runner: system.Privileged()})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // rules survive a second Up unchanged
		if err := n.Up(ctx); err != nil {
			t.Fatal(err)
		}
		want := readSample(t, "docker-banger-"+string(b)+".save").Render()
		if diff := cmp.Diff(want, hostSave(t, b)); diff != "" {
			t.Errorf("rules after up (-want +got):\n%s", diff)
		}
	}
	fwd, err := os.ReadFile(ipForwardPath)
	if err != nil || strings.TrimSpace(string(fwd)) != "1" {
		t.Errorf("ip_forward = %q, %v; want 1", fwd, err)
	}
	st, err := n.Status(ctx)
	if err != nil || !st.Up() || st.Backend != b {
		t.Errorf("status after up = %+v, %v", st, err)
	}

	for range 2 { // Down twice is fine
		if err := n.Down(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(before, hostSave(t, b)); diff != "" {
		t.Errorf("rules after down differ from before up (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(otherBefore, hostSave(t, other(b))); diff != "" {
		t.Errorf("the %s backend was touched (-before +after):\n%s", other(b), diff)
	}
	st, err = n.Status(ctx)
	if err != nil || st.Present || st.Up() {
		t.Errorf("status after down = %+v, %v", st, err)
	}
}

func TestHostUpDownNFT(t *testing.T) {
	if !testutil.InNetns(t) {
		return
	}
	testHostUpDown(t, NFT)
}

func TestHostUpDownLegacy(t *testing.T) {
	if !testutil.InNetns(t) {
		return
	}
	testHostUpDown(t, Legacy)
}

// TestHostDetectsLegacyRules checks that with Docker's rules only in the
// legacy tables, detection picks legacy even though `iptables` is nft.
func TestHostDetectsLegacyRules(t *testing.T) {
	if !testutil.InNetns(t) {
		return
	}
	testutil.RequireTool(t, "iptables-legacy-restore", "iptables-nft-save")
	out, err := exec.Command("iptables", "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	plain, err := ParseVersion(string(out))
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{}, Deps{Runner: system.Privileged()})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := New(Config{}, Deps{Runner: system.Privileged()})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := fresh.Status(context.Background()); err != nil || st.Backend != plain {
		t.Errorf("empty tables: backend %q, %v; want iptables' own %q", st.Backend, err, plain)
	}
	hostRestore(t, other(plain), "testdata/docker-"+string(other(plain))+".save")
	if err := n.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := hostSave(t, other(plain)); !strings.Contains(got, "-A FORWARD -j BANGER-FWD") {
		t.Errorf("rules not in the backend that holds Docker's rules (%s):\n%s", other(plain), got)
	}
	if got := hostSave(t, plain); strings.Contains(got, "BANGER") {
		t.Errorf("rules leaked into %s:\n%s", plain, got)
	}
}
