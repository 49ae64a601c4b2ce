package hostsetup

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"banger/internal/nat"
)

// Teardown refuses while a VM runs, then removes the user's daemon,
// network, runtime directory and (with Data) data, and puts ip_forward
// back only when the last banger network here is gone.
func TestTeardownRemovesTheFootprintAndRestoresIPForward(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	// Files the test makes belong to the test's uid: let alice have it.
	uid := os.Getuid()
	if uid == 0 {
		uid = 1001
	}
	home := filepath.Join(t.TempDir(), "alice")
	f.host.accounts["alice"].UID, f.host.accounts["alice"].Home = uid, home
	bobOpts := f.opts
	bobOpts.User = "bob"
	for _, o := range []Options{f.opts, bobOpts} {
		a, err := Setup(ctx, o, f.deps)
		if err != nil {
			t.Fatalf("%v\n%s", err, f.out)
		}
		p, err := f.deps.Plumbing(a)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.BridgeUp(ctx); err != nil {
			t.Fatal(err)
		}
		if err := p.NATUp(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if !f.host.fw.IPForward() {
		t.Fatal("nat up left ip_forward off")
	}
	dirs := []string{filepath.Join(f.opts.RuntimeBase, strconv.Itoa(uid), "banger", "vms"), filepath.Join(home, ".local", "share", "banger", "images")}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if os.Getuid() == 0 {
			for p := d; strings.HasPrefix(p, filepath.Dir(dirs[0])) || strings.HasPrefix(p, home); p = filepath.Dir(p) {
				if err := os.Chown(p, uid, uid); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	own := ownNetNS()
	f.host.procs = []Process{
		{PID: 10, UID: uid, Comm: "bangerd", NetNS: own},
		{PID: 11, UID: uid, Comm: "banger-vmm-qemu", NetNS: own},
		{PID: 12, UID: uid, Comm: "bangerd", NetNS: own + 1}, // another namespace's
	}
	err := Teardown(ctx, f.opts, f.deps, TeardownOptions{Data: true})
	if err == nil || !strings.Contains(err.Error(), "banger-vmm-qemu pid 11") || !strings.Contains(err.Error(), "banger vm stop --all") {
		t.Fatalf("teardown with a running vm: %v", err)
	}
	if _, err := f.host.links.Link("banger1"); err != nil {
		t.Fatalf("a refused teardown changed the host: %v", err)
	}

	f.host.procs = f.host.procs[:1]
	if err := Teardown(ctx, f.opts, f.deps, TeardownOptions{Data: true}); err != nil {
		t.Fatalf("%v\n%s", err, f.out)
	}
	if len(f.host.procs) != 0 {
		t.Errorf("processes left: %+v", f.host.procs)
	}
	if _, err := f.host.links.Link("banger1"); err == nil {
		t.Error("alice's bridge banger1 is left")
	}
	if rules := f.host.fw.Rules(nat.NFT); strings.Contains(rules, "BANGER1-") || !strings.Contains(rules, "BANGER2-") {
		t.Errorf("after alice's teardown, want only bob's chains:\n%s", rules)
	}
	for _, d := range []string{filepath.Dir(dirs[0]), filepath.Join(home, ".local", "share", "banger")} {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("%s is left", d)
		}
	}
	if !f.host.fw.IPForward() {
		t.Error("alice's teardown turned ip_forward off while bob's network is up")
	}
	if _, err := f.opts.Registry.Load("alice"); err != nil {
		t.Errorf("teardown removed alice's set-up: %v", err)
	}

	if err := Teardown(ctx, bobOpts, f.deps, TeardownOptions{}); err != nil {
		t.Fatalf("%v\n%s", err, f.out)
	}
	if f.host.fw.IPForward() {
		t.Errorf("ip_forward is still on after the last teardown:\n%s", f.out)
	}
	if rules := f.host.fw.Rules(nat.NFT); strings.Contains(rules, "BANGER") {
		t.Errorf("chains left:\n%s", rules)
	}
	// Again: nothing left to do, and no error.
	if err := Teardown(ctx, f.opts, f.deps, TeardownOptions{}); err != nil {
		t.Errorf("a second teardown: %v", err)
	}
}

// --data runs as root in a directory the user controls: a symlink in the
// path must not lead it outside their home.
func TestRemoveOwnedTreeStaysInsideItsBase(t *testing.T) {
	uid := os.Getuid()
	home, outside := t.TempDir(), t.TempDir()
	victim := filepath.Join(outside, "share", "banger")
	if err := os.MkdirAll(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(home, ".local")); err != nil {
		t.Fatal(err)
	}
	if removed, err := removeOwnedTree(home, ".local/share/banger", uid); removed || err == nil {
		t.Errorf("removeOwnedTree through a symlink out of home: removed %v, %v", removed, err)
	}
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("%s outside the home was removed: %v", victim, err)
	}
	mine := filepath.Join(home, "data", "banger")
	if err := os.MkdirAll(filepath.Join(mine, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	if removed, err := removeOwnedTree(home, "data/banger", uid); !removed || err != nil {
		t.Errorf("removeOwnedTree of the home's own directory: removed %v, %v", removed, err)
	}
	if removed, err := removeOwnedTree(home, "data/banger", uid); removed || err != nil {
		t.Errorf("removeOwnedTree of a directory that is gone: removed %v, %v", removed, err)
	}
}
