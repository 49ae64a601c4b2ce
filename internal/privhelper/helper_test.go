package privhelper

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"banger/internal/network"
)

// asUser is a call by uid through sudo.
func asUser(uid int, args ...string) Invocation {
	return Invocation{Args: args, EUID: 0, SudoUID: fmt.Sprint(uid)}
}

func mustRun(t *testing.T, w *world, inv Invocation) {
	t.Helper()
	if code := Run(context.Background(), inv, w.deps()); code != ExitOK {
		t.Fatalf("helper %q as %q: exit %d: %s", inv.Args, inv.SudoUID, code, w.err.String())
	}
}

func TestRunOwnAllocation(t *testing.T) {
	w := newWorld(t)
	a := w.alice
	tap := a.TAPName("dev")
	before := w.state(t)
	for range 2 { // every verb is idempotent
		for _, args := range [][]string{
			{"bridge", "up"},
			{"nat", "up"},
			{"tap", "add", tap, network.TAPMAC("dev").String()},
		} {
			mustRun(t, w, asUser(aliceUID, args...))
		}
	}
	st := w.state(t)
	for _, want := range []string{
		"link banger1 kind bridge",
		"addrs 10.213.1.1/24",
		fmt.Sprintf("link %s kind tuntap mac %s master \"banger1\" up true owner %d", tap, network.TAPMAC("dev"), aliceUID),
		"-A FORWARD -j BANGER1-FWD",
		"-A BANGER1-POST -s 10.213.1.0/24 ! -o banger1 -j MASQUERADE",
		"--dport 53 -j DNAT --to-destination 10.213.1.1:42103",
		"ip_forward true",
	} {
		if !strings.Contains(st, want) {
			t.Errorf("state lacks %q:\n%s", want, st)
		}
	}
	if strings.Contains(st, "BANGER-FWD") || strings.Contains(st, "banger0") {
		t.Errorf("alice's calls touched the default allocation:\n%s", st)
	}
	for range 2 {
		for _, args := range [][]string{{"tap", "del", tap}, {"nat", "down"}, {"bridge", "down"}} {
			mustRun(t, w, asUser(aliceUID, args...))
		}
	}
	// Everything is as before, but forwarding stays on (others may need it).
	want := strings.Replace(before, "ip_forward false", "ip_forward true", 1)
	if diff := cmp.Diff(want, w.state(t)); diff != "" {
		t.Errorf("state after down (-want +got):\n%s", diff)
	}
}

// TestRunAdversarial tries, as alice, everything she must not be able to
// do, with bob's network up and a TAP of each of them present, and checks
// that each call is refused with a message saying why and that the whole
// host is unchanged.
func TestRunAdversarial(t *testing.T) {
	w := newWorld(t)
	for _, args := range [][]string{{"bridge", "up"}, {"nat", "up"}, {"tap", "add", w.bob.TAPName("web"), "06:00:00:00:00:02"}} {
		mustRun(t, w, asUser(bobUID, args...))
	}
	for _, args := range [][]string{{"bridge", "up"}, {"nat", "up"}, {"tap", "add", w.alice.TAPName("dev"), "06:00:00:00:00:01"}} {
		mustRun(t, w, asUser(aliceUID, args...))
	}
	// Links alice's names might be confused with: a TAP with her prefix
	// that root made for bob, one with her prefix on bob's bridge, a veth
	// with her prefix, a root-made TAP of the default prefix.
	must(t, w.links.AddTAP("bg1-bobs", bobUID))
	must(t, w.links.AddTAP("bg1-onbob", aliceUID))
	must(t, w.links.SetMaster("bg1-onbob", "banger2"))
	must(t, w.links.AddTAP("bg-root", -1))
	w.links.ExtraRoutes = nil
	before := w.state(t)

	tests := []struct {
		name string
		inv  Invocation
		want string
	}{
		{"bob's tap by name", asUser(aliceUID, "tap", "del", w.bob.TAPName("web")), `want "bg1-"`},
		{"bob's tap prefix on add", asUser(aliceUID, "tap", "add", "bg2-x", "06:00:00:00:00:09"), `want "bg1-"`},
		{"root's tap", asUser(aliceUID, "tap", "del", "bg-root"), `want "bg1-"`},
		{"host interface eth0", asUser(aliceUID, "tap", "del", "eth0"), `want "bg1-"`},
		{"loopback", asUser(aliceUID, "tap", "del", "lo"), `want "bg1-"`},
		{"bob's bridge as tap", asUser(aliceUID, "tap", "del", "banger2"), `want "bg1-"`},
		{"tap with her prefix owned by bob", asUser(aliceUID, "tap", "del", "bg1-bobs"), "owned by uid 1002"},
		{"re-add tap owned by bob", asUser(aliceUID, "tap", "add", "bg1-bobs", "06:00:00:00:00:09"), "owned by uid 1002"},
		{"tap with her prefix on bob's bridge", asUser(aliceUID, "tap", "del", "bg1-onbob"), "attached to banger2"},
		{"traversal in tap name", asUser(aliceUID, "tap", "del", "bg1-../../x"), "not allowed"},
		{"bridge named on the command line", asUser(aliceUID, "bridge", "up", "eth0"), "takes no arguments"},
		{"bridge down of bob's", asUser(aliceUID, "bridge", "down", "banger2"), "takes no arguments"},
		{"subnet on the command line", asUser(aliceUID, "bridge", "up", "--subnet", "192.168.1.0/24"), "takes no arguments"},
		{"arbitrary rule", asUser(aliceUID, "nat", "up", "-A", "INPUT", "-j", "ACCEPT"), "takes no arguments"},
		{"chain injection", asUser(aliceUID, "nat", "down", "BANGER2-FWD"), "takes no arguments"},
		{"flush", asUser(aliceUID, "nat", "flush"), "unknown command"},
		{"shell", asUser(aliceUID, "sh", "-c", "id"), "unknown command"},
		{"hook option", asUser(aliceUID, "--customize-hook=id", "nat", "up"), "unknown command"},
		{"--user by a user", asUser(aliceUID, "--user", "bob", "nat", "down"), "only root may name --user"},
		{"a user without allocation", asUser(1003, "bridge", "up"), "sudo banger system setup --user carol"},
		{"an unknown uid", asUser(4242, "bridge", "up"), "caller uid 4242"},
		{"not root", Invocation{Args: []string{"nat", "up"}, EUID: aliceUID, SudoUID: fmt.Sprint(aliceUID)}, "must run as root"},
		{"forged SUDO_UID", Invocation{Args: []string{"nat", "down"}, EUID: 0, SudoUID: "1002 "}, "not a uid"},
		{"hex SUDO_UID", Invocation{Args: []string{"nat", "down"}, EUID: 0, SudoUID: "0x3ea"}, "not a uid"},
		{"negative SUDO_UID", Invocation{Args: []string{"nat", "down"}, EUID: 0, SudoUID: "-1"}, "not a uid"},
		{"root without --user", Invocation{Args: []string{"nat", "down"}, EUID: 0}, "--user NAME"},
		{"root with --user root", Invocation{Args: []string{"--user", "root", "bridge", "down"}, EUID: 0}, "default allocation"},
		{"multicast mac", asUser(aliceUID, "tap", "add", "bg1-new", "01:00:5e:00:00:01"), "multicast"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w.err.Reset()
			code := Run(context.Background(), tt.inv, w.deps())
			msg := w.err.String()
			if code != ExitRefused || !strings.Contains(msg, "refused") || !strings.Contains(msg, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and a refusal saying %q", code, msg, ExitRefused, tt.want)
			}
			if diff := cmp.Diff(before, w.state(t)); diff != "" {
				t.Errorf("host changed (-before +after):\n%s", diff)
			}
		})
	}
}

// TestRunRefusesTamperedRecord: a record someone other than root could
// have written stops every call.
func TestRunRefusesTamperedRecord(t *testing.T) {
	w := newWorld(t)
	before := w.state(t)
	must(t, os.Chmod(w.reg.Path("alice"), 0o666))
	code := Run(context.Background(), asUser(aliceUID, "bridge", "up"), w.deps())
	if code != ExitRefused || !strings.Contains(w.err.String(), "writable by group or others") {
		t.Errorf("exit %d, stderr %q", code, w.err.String())
	}
	if diff := cmp.Diff(before, w.state(t)); diff != "" {
		t.Errorf("host changed (-before +after):\n%s", diff)
	}
}

// TestRunRefusesOverlappingSubnet: a host route that appeared over the
// user's subnet after setup makes bridge up fail with the clash named.
func TestRunRefusesOverlappingSubnet(t *testing.T) {
	w := newWorld(t)
	w.links.ExtraRoutes = []network.Route{{Dst: netip.MustParsePrefix("10.213.0.0/16"), Dev: "tun0"}}
	before := w.state(t)
	code := Run(context.Background(), asUser(aliceUID, "bridge", "up"), w.deps())
	if code == ExitOK || !strings.Contains(w.err.String(), "route 10.213.0.0/16 via tun0") || !strings.Contains(w.err.String(), "system setup --remove") {
		t.Errorf("exit %d, stderr %q; want the clash and the fix", code, w.err.String())
	}
	if diff := cmp.Diff(before, w.state(t)); diff != "" {
		t.Errorf("host changed (-before +after):\n%s", diff)
	}
}

func TestRunCheckChangesNothing(t *testing.T) {
	w := newWorld(t)
	before := w.state(t)
	mustRun(t, w, asUser(aliceUID, "check"))
	if code := Run(context.Background(), asUser(1003, "check"), w.deps()); code != ExitRefused || !strings.Contains(w.err.String(), "system setup --user carol") {
		t.Errorf("check for a user without setup: exit %d, %q", code, w.err.String())
	}
	if diff := cmp.Diff(before, w.state(t)); diff != "" {
		t.Errorf("check changed the host (-before +after):\n%s", diff)
	}
}

func TestRunTAPAddNeedsBridge(t *testing.T) {
	w := newWorld(t)
	before := w.state(t)
	code := Run(context.Background(), asUser(aliceUID, "tap", "add", "bg1-dev", "06:00:00:00:00:01"), w.deps())
	if code != ExitRefused || !strings.Contains(w.err.String(), "run bridge up first") {
		t.Errorf("tap add without the bridge: exit %d, %q", code, w.err.String())
	}
	if diff := cmp.Diff(before, w.state(t)); diff != "" {
		t.Errorf("host changed (-before +after):\n%s", diff)
	}
}

func TestRunRootForUser(t *testing.T) {
	w := newWorld(t)
	mustRun(t, w, Invocation{Args: []string{"--user", "bob", "bridge", "up"}, EUID: 0})
	mustRun(t, w, Invocation{Args: []string{"--user", "bob", "tap", "add", "bg2-x", "06:00:00:00:00:03"}, EUID: 0})
	if st := w.state(t); !strings.Contains(st, fmt.Sprintf("link bg2-x kind tuntap mac 06:00:00:00:00:03 master \"banger2\" up true owner %d", bobUID)) {
		t.Errorf("root's call for bob did not make bob's tap:\n%s", st)
	}
}

func TestRunUIDMismatch(t *testing.T) {
	w := newWorld(t)
	a := w.alice
	a.UID = 1005 // the account was recreated with another uid
	must(t, w.reg.Save(a))
	code := Run(context.Background(), asUser(aliceUID, "bridge", "up"), w.deps())
	if code != ExitRefused || !strings.Contains(w.err.String(), "records uid 1005") {
		t.Errorf("exit %d, stderr %q", code, w.err.String())
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
