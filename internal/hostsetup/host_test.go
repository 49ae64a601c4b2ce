package hostsetup

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"banger/internal/allocation"
	"banger/internal/nat"
	"banger/internal/network"
	"banger/internal/privhelper"
	"banger/internal/testutil"
)

// The host tier of the privilege boundary: real users made by the test,
// `system setup` done for them (paths in temporary directories, the sudoers
// rule in /etc/sudoers.d under a unique name), the real helper run through
// the real sudo as those users, real netlink and iptables, all inside a
// network namespace the test makes and leaves.

// hostEnv is one test's temporary installation.
type hostEnv struct {
	dir    string
	helper string // installed helper
	opts   Options
}

// buildHelper builds cmd/banger-helper with its fixed paths pointed into
// dir, as a test build may (see cmd/banger-helper).
func buildHelper(t *testing.T, dir string) (string, Options) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	users := filepath.Join(dir, "etc", "banger", "users")
	lock := filepath.Join(dir, "run", "banger", "helper.lock")
	src := filepath.Join(dir, "build", "banger-helper")
	cmd := exec.Command("go", "build", "-o", src, "-ldflags", "-X main.usersDir="+users+" -X main.lockPath="+lock, "./cmd/banger-helper")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building banger-helper: %v\n%s", err, out)
	}
	return src, Options{
		Registry:     allocation.Registry{Dir: users},
		HelperSource: src,
		HelperPath:   filepath.Join(dir, "libexec", "banger", "banger-helper"),
		SudoersDir:   "/etc/sudoers.d",
		KVMDevice:    filepath.Join(dir, "no-kvm"), // leave the host's kvm group alone
	}
}

func newHostEnv(t *testing.T) *hostEnv {
	t.Helper()
	testutil.RequireTool(t, "sudo", "visudo", "useradd", "userdel", "setpriv", "go", "iptables-nft-save", "iptables-legacy-save", "sysctl")
	dir := t.TempDir()
	// t.TempDir's parents are root's and 0700; the helper runs as root.
	_, opts := buildHelper(t, dir)
	// A /dev/net/tun of this mount namespace only, mode 0600 as on hosts
	// without udev's rule: setup must make it usable, and the host's own
	// device stays as it is.
	sh(t, "mount", "-t", "tmpfs", "-o", "mode=0755", "banger-test", "/dev/net")
	sh(t, "mknod", "-m", "0600", "/dev/net/tun", "c", "10", "200")
	opts.TunDevice = "/dev/net/tun"
	return &hostEnv{dir: dir, helper: opts.HelperPath, opts: opts}
}

// openTAPEnv names the TAP TestHostOpenTAPProcess opens.
const openTAPEnv = "BANGER_TEST_OPEN_TAP"

// TestHostOpenTAPProcess is the test binary acting as a VMM: run as a test
// user by TestHostHelperAsUser, it attaches to the TAP named in its
// environment as Firecracker does, and prints the outcome.
func TestHostOpenTAPProcess(t *testing.T) {
	name := os.Getenv(openTAPEnv)
	if name == "" {
		t.Skip("helper process of TestHostHelperAsUser, not a test")
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err == nil {
		defer unix.Close(fd)
		var ifr *unix.Ifreq
		if ifr, err = unix.NewIfreq(name); err == nil {
			ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
			err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
		}
	}
	if err != nil {
		fmt.Printf("open-tap %s: %v\n", name, err)
		os.Exit(3)
	}
	fmt.Printf("open-tap %s: attached\n", name)
	os.Exit(0)
}

// openTAPAs runs the test binary as u to attach to tap, like a VMM.
func (e *hostEnv) openTAPAs(t *testing.T, u testUser, tap string) result {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(e.dir, "vmm", "hostsetup.test")
	if _, err := os.Stat(bin); err != nil {
		data, err := os.ReadFile(exe)
		if err != nil {
			t.Fatal(err)
		}
		must(t, os.MkdirAll(filepath.Dir(bin), 0o755))
		must(t, os.WriteFile(bin, data, 0o755))
		for d := e.dir; d != "/tmp" && d != "/"; d = filepath.Dir(d) {
			must(t, os.Chmod(d, 0o755)) // let the user reach it
		}
	}
	return as(t, u, "env", openTAPEnv+"="+tap, bin, "-test.run", "^TestHostOpenTAPProcess$")
}

// testUser is an account made for the test and deleted after it.
type testUser struct {
	name     string
	uid, gid int
}

func addUser(t *testing.T) testUser {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := "bgt" + hex.EncodeToString(b)
	if out, err := exec.Command("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v: %s", name, err, out)
		}
	})
	acct, err := osAccounts{}.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return testUser{name: name, uid: acct.UID, gid: acct.GID}
}

// setup runs `system setup` for u and makes sure its sudoers rule goes
// again, whatever happens: a rule left pointing into a deleted temporary
// directory would let anyone who recreates that path run code as root.
func (e *hostEnv) setup(t *testing.T, u testUser) allocation.Allocation {
	t.Helper()
	rule := filepath.Join(e.opts.SudoersDir, SudoersFileName(u.name))
	t.Cleanup(func() {
		if err := os.Remove(rule); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("removing %s: %v", rule, err)
		}
	})
	opts := e.opts
	opts.User = u.name
	var out strings.Builder
	a, err := Setup(context.Background(), opts, Deps{EUID: os.Geteuid(), Out: &out})
	if err != nil {
		t.Fatalf("system setup for %s: %v\n%s", u.name, err, out.String())
	}
	t.Logf("system setup for %s:\n%s", u.name, out.String())
	return a
}

func (e *hostEnv) remove(t *testing.T, u testUser) {
	t.Helper()
	opts := e.opts
	opts.User = u.name
	var out strings.Builder
	if err := Remove(context.Background(), opts, Deps{EUID: os.Geteuid(), Out: &out}); err != nil {
		t.Fatalf("system setup --remove for %s: %v\n%s", u.name, err, out.String())
	}
	t.Logf("system setup --remove for %s:\n%s", u.name, out.String())
}

// result is what one command said.
type result struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// as runs argv as u, with u's groups and an empty environment but PATH.
func as(t *testing.T, u testUser, argv ...string) result {
	t.Helper()
	full := append([]string{"--reuid=" + strconv.Itoa(u.uid), "--regid=" + strconv.Itoa(u.gid), "--init-groups", "--"}, argv...)
	cmd := exec.Command("setpriv", full...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running %q as %s: %v", argv, u.name, err)
	}
	return r
}

// helper runs the installed helper as u through sudo -n.
func (e *hostEnv) helperAs(t *testing.T, u testUser, args ...string) result {
	t.Helper()
	return as(t, u, append([]string{"sudo", "-n", "--", e.helper}, args...)...)
}

func (e *hostEnv) mustHelper(t *testing.T, u testUser, args ...string) {
	t.Helper()
	if r := e.helperAs(t, u, args...); r.code != 0 {
		t.Fatalf("helper %q as %s: exit %d: %s", args, u.name, r.code, r.stderr)
	}
}

// hostState renders every link, both iptables backends and ip_forward:
// what the helper could possibly change.
func hostState(t *testing.T) string {
	t.Helper()
	links, err := network.Netlink{}.List()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range links {
		addrs := make([]string, len(l.Addrs))
		for i, a := range l.Addrs {
			addrs[i] = a.String()
		}
		slices.Sort(addrs)
		lines = append(lines, fmt.Sprintf("link %s kind %s mac %s master %q up %v owner %d addrs %s", l.Name, l.Kind, l.MAC, l.Master, l.Up, l.Owner, strings.Join(addrs, ",")))
	}
	slices.Sort(lines)
	var b strings.Builder
	b.WriteString(strings.Join(lines, "\n"))
	for _, backend := range []string{"nft", "legacy"} {
		out, err := exec.Command("iptables-" + backend + "-save").Output()
		if err != nil {
			t.Fatalf("iptables-%s-save: %v", backend, err)
		}
		rs, err := nat.ParseSave(out)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "\n--%s--\n%s", backend, withoutEmptyTables(rs).Render())
	}
	fwd, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "ip_forward %s", bytes.TrimSpace(fwd))
	return b.String()
}

// withoutEmptyTables drops tables holding only built-in chains with an
// ACCEPT policy and no rules: iptables-nft leaves such a table behind once
// it has been used, and it filters nothing.
func withoutEmptyTables(rs *nat.Ruleset) *nat.Ruleset {
	out := &nat.Ruleset{}
	for _, tb := range rs.Tables {
		empty := len(tb.Rules) == 0
		for _, c := range tb.Chains {
			empty = empty && c.Policy == "ACCEPT"
		}
		if !empty {
			out.Tables = append(out.Tables, tb)
		}
	}
	return out
}

func sh(t *testing.T, argv ...string) {
	t.Helper()
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%q: %v: %s", argv, err, out)
	}
}

// TestHostHelperAsUser: a user set up by `system setup` brings up and takes
// down their own network through sudo and the helper, next to root's
// default network, which stays as it was.
func TestHostHelperAsUser(t *testing.T) {
	if !testutil.InNetns(t) {
		return
	}
	e := newHostEnv(t)
	alice := addUser(t)
	a := e.setup(t, alice)
	// Root's own bangerd has its network up beside.
	root, err := privhelper.NewDirect(allocation.Default(), privhelper.DirectDeps{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	must(t, root.BridgeUp(ctx))
	must(t, root.NATUp(ctx))
	must(t, root.TAPAdd(ctx, "bg-rootvm", network.TAPMAC("rootvm")))
	before := hostState(t)
	e.mustHelper(t, alice, "check")
	if diff := cmp.Diff(before, hostState(t)); diff != "" {
		t.Errorf("check changed the host (-before +after):\n%s", diff)
	}

	tap := a.TAPName("dev")
	var took []time.Duration
	for range 2 {
		for _, args := range [][]string{{"bridge", "up"}, {"nat", "up"}, {"tap", "add", tap, network.TAPMAC("dev").String()}} {
			r := e.helperAs(t, alice, args...)
			if r.code != 0 {
				t.Fatalf("helper %q: exit %d: %s", args, r.code, r.stderr)
			}
			took = append(took, r.took)
		}
	}
	t.Logf("helper calls through sudo took %v", took)
	// Alice's VMM, running as alice, attaches to her TAP, and to no other.
	if r := e.openTAPAs(t, alice, tap); r.code != 0 || !strings.Contains(r.stdout, "attached") {
		t.Errorf("alice attaching to her tap: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if r := e.openTAPAs(t, alice, "bg-rootvm"); r.code != 3 || !strings.Contains(r.stdout, "not permitted") {
		t.Errorf("alice attaching to root's tap: exit %d: %s%s; want EPERM", r.code, r.stdout, r.stderr)
	}
	got := hostState(t)
	for _, want := range []string{
		fmt.Sprintf("link %s kind bridge", a.Bridge),
		fmt.Sprintf("addrs %s", netipPrefix(a)),
		fmt.Sprintf("link %s kind tuntap mac %s master %q up true owner %d", tap, network.TAPMAC("dev"), a.Bridge, alice.uid),
		"-A FORWARD -j " + a.Chains.Forward,
		"-A " + a.Chains.Post + " -s " + a.Subnet.String() + " ! -o " + a.Bridge + " -j MASQUERADE",
		"ip_forward 1",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("state after alice's up lacks %q:\n%s", want, got)
		}
	}
	// Root's network is untouched by alice's calls.
	for _, line := range strings.Split(before, "\n") {
		if strings.Contains(line, "banger0") || strings.Contains(line, "BANGER-") || strings.Contains(line, "bg-rootvm") {
			if !strings.Contains(got, line) {
				t.Errorf("root's %q changed by alice's calls", line)
			}
		}
	}
	logCrossingCost(t, e, alice, a)
	for range 2 {
		for _, args := range [][]string{{"tap", "del", tap}, {"nat", "down"}, {"bridge", "down"}} {
			e.mustHelper(t, alice, args...)
		}
	}
	if diff := cmp.Diff(before, hostState(t)); diff != "" {
		t.Errorf("state after alice's down (-before +after):\n%s", diff)
	}
	e.remove(t, alice)
	if _, err := os.Stat(filepath.Join("/etc/sudoers.d", SudoersFileName(alice.name))); !os.IsNotExist(err) {
		t.Errorf("sudoers rule left after remove: %v", err)
	}
	if r := e.helperAs(t, alice, "bridge", "up"); r.code == 0 || !strings.Contains(r.stderr, "password is required") {
		t.Errorf("helper after remove: exit %d, %q; want sudo to refuse", r.code, r.stderr)
	}
}

// logCrossingCost logs the median time of a VM's TAP add and delete
// through sudo and the helper, beside the same in-process (bangerd as
// root), for the privilege-crossing budget.
func logCrossingCost(t *testing.T, e *hostEnv, u testUser, a allocation.Allocation) {
	t.Helper()
	direct, err := privhelper.NewDirect(a, privhelper.DirectDeps{})
	if err != nil {
		t.Fatal(err)
	}
	median := func(d []time.Duration) time.Duration {
		slices.Sort(d)
		return d[len(d)/2]
	}
	var viaHelper, inProcess []time.Duration
	for i := range 9 {
		tap := a.TAPName(fmt.Sprintf("cost%d", i))
		r := e.helperAs(t, u, "tap", "add", tap, "06:00:00:00:01:01")
		if r.code != 0 {
			t.Fatalf("tap add: %s", r.stderr)
		}
		viaHelper = append(viaHelper, r.took)
		e.mustHelper(t, u, "tap", "del", tap)
		start := time.Now()
		must(t, direct.TAPAdd(context.Background(), tap, network.TAPMAC("x")))
		inProcess = append(inProcess, time.Since(start))
		must(t, direct.TAPDel(context.Background(), tap))
	}
	t.Logf("tap add: %v through sudo and the helper (setpriv included), %v in-process (median of 9)", median(viaHelper), median(inProcess))
}

func netipPrefix(a allocation.Allocation) string {
	return fmt.Sprintf("%s/%d", a.Gateway(), a.Subnet.Bits())
}

// TestHostAdversarial tries, as a user set up by `system setup`, to get
// more than their own network out of what setup granted, with a second
// user's network up beside, and checks that every attempt is refused with
// a clear message and that the host's links and rules are unchanged.
func TestHostAdversarial(t *testing.T) {
	if !testutil.InNetns(t) {
		return
	}
	e := newHostEnv(t)
	alice, bob := addUser(t), addUser(t)
	a, b := e.setup(t, alice), e.setup(t, bob)
	for _, args := range [][]string{{"bridge", "up"}, {"nat", "up"}, {"tap", "add", b.TAPName("web"), "06:00:00:00:00:02"}} {
		e.mustHelper(t, bob, args...)
	}
	for _, args := range [][]string{{"bridge", "up"}, {"nat", "up"}, {"tap", "add", a.TAPName("dev"), "06:00:00:00:00:01"}} {
		e.mustHelper(t, alice, args...)
	}
	// A host-like interface, a TAP with alice's prefix that root made for
	// bob, and a route a VPN might add after setup.
	sh(t, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
	sh(t, "ip", "tuntap", "add", "dev", a.TAPPrefix+"bobs", "mode", "tap", "user", strconv.Itoa(bob.uid))
	before := hostState(t)

	refused := []struct {
		name string
		argv []string // run as alice
		want string
	}{
		// sudo itself allows only the helper, with no environment.
		{"a shell through sudo", []string{"sudo", "-n", "/bin/sh", "-c", "id"}, "password is required"},
		{"iptables through sudo", []string{"sudo", "-n", "/usr/sbin/iptables", "-F"}, "password is required"},
		{"the helper as another user", []string{"sudo", "-n", "-u", bob.name, e.helper, "nat", "down"}, "password is required"},
		{"preserved environment", []string{"sudo", "-n", "-E", e.helper, "nat", "down"}, "not allowed to preserve the environment"},
		{"forged SUDO_UID", []string{"sudo", "-n", "SUDO_UID=" + strconv.Itoa(bob.uid), e.helper, "nat", "down"}, "not allowed to set"},
		{"helper without sudo", []string{e.helper, "nat", "down"}, "must run as root"},
		// The helper's grammar and checks.
		{"bob's tap", e.sudo("tap", "del", b.TAPName("web")), "want \"" + a.TAPPrefix + "\""},
		{"a tap with bob's prefix", e.sudo("tap", "add", b.TAPPrefix+"x", "06:00:00:00:00:09"), "want \"" + a.TAPPrefix + "\""},
		{"alice's prefix, bob's tap", e.sudo("tap", "del", a.TAPPrefix+"bobs"), fmt.Sprintf("owned by uid %d", bob.uid)},
		{"host interface", e.sudo("tap", "del", "eth0"), "want \"" + a.TAPPrefix + "\""},
		{"loopback", e.sudo("tap", "del", "lo"), "want \"" + a.TAPPrefix + "\""},
		{"bob's bridge", e.sudo("tap", "del", b.Bridge), "want \"" + a.TAPPrefix + "\""},
		{"path traversal", e.sudo("tap", "del", a.TAPPrefix+"../x"), "not allowed"},
		{"long path traversal", e.sudo("tap", "del", a.TAPPrefix+"../../etc/passwd"), "want 1 to 15 characters"},
		{"bridge by argument", e.sudo("bridge", "down", b.Bridge), "takes no arguments"},
		{"subnet by argument", e.sudo("bridge", "up", "--subnet", "0.0.0.0/0"), "takes no arguments"},
		{"arbitrary rule", e.sudo("nat", "up", "-I", "INPUT", "-j", "ACCEPT"), "takes no arguments"},
		{"another user's chains", e.sudo("nat", "down", b.Chains.Forward), "takes no arguments"},
		{"option injection", e.sudo("--user", bob.name, "nat", "down"), "only root may name --user"},
		{"hook injection", e.sudo("--customize-hook=id", "bridge", "up"), "unknown command"},
		{"unknown verb", e.sudo("exec", "/bin/sh"), "unknown command"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			r := as(t, alice, tt.argv...)
			if r.code == 0 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("%q as alice: exit %d, stderr %q; want a refusal saying %q", tt.argv, r.code, r.stderr, tt.want)
			}
			if diff := cmp.Diff(before, hostState(t)); diff != "" {
				t.Fatalf("host changed (-before +after):\n%s", diff)
			}
		})
	}

	t.Run("record not root's", func(t *testing.T) {
		path := e.opts.Registry.Path(alice.name)
		must(t, os.Chown(path, alice.uid, alice.gid))
		defer func() { must(t, os.Chown(path, 0, 0)) }()
		r := e.helperAs(t, alice, "nat", "down")
		if r.code != privhelper.ExitRefused || !strings.Contains(r.stderr, "want root") {
			t.Errorf("helper with a record alice owns: exit %d, %q", r.code, r.stderr)
		}
		if diff := cmp.Diff(before, hostState(t)); diff != "" {
			t.Fatalf("host changed (-before +after):\n%s", diff)
		}
	})
	t.Run("subnet under a new host route", func(t *testing.T) {
		must(t, exec.Command("ip", "link", "set", a.Bridge, "down").Run())
		sh(t, "ip", "link", "del", a.Bridge) // root took it away; alice's next bridge up must re-check
		sh(t, "ip", "addr", "add", "10.213.0.0/16", "dev", "eth0")
		sh(t, "ip", "link", "set", "eth0", "up")
		mid := hostState(t)
		r := e.helperAs(t, alice, "bridge", "up")
		if r.code == 0 || !strings.Contains(r.stderr, "clashes") || !strings.Contains(r.stderr, "eth0") {
			t.Errorf("bridge up under a clashing route: exit %d, %q", r.code, r.stderr)
		}
		if diff := cmp.Diff(mid, hostState(t)); diff != "" {
			t.Errorf("host changed (-before +after):\n%s", diff)
		}
	})
}

// sudo returns the argv that runs the helper through sudo.
func (e *hostEnv) sudo(args ...string) []string {
	return append([]string{"sudo", "-n", "--", e.helper}, args...)
}

// TestHostTwoUsers: two users set up on one host bring up their networks
// at the same time; each has its own bridge, subnet, TAPs and chains; one
// tearing down leaves the other's whole.
func TestHostTwoUsers(t *testing.T) {
	if !testutil.InNetns(t) {
		return
	}
	e := newHostEnv(t)
	alice, bob := addUser(t), addUser(t)
	a, b := e.setup(t, alice), e.setup(t, bob)
	if a.Subnet.Overlaps(b.Subnet) || a.Bridge == b.Bridge || a.TAPPrefix == b.TAPPrefix || a.Chains == b.Chains || a.DNSPort == b.DNSPort || a.Zone == b.Zone {
		t.Fatalf("allocations collide:\n%+v\n%+v", a, b)
	}
	initial := hostState(t)
	up := func(u testUser, al allocation.Allocation) {
		for _, args := range [][]string{{"bridge", "up"}, {"nat", "up"}, {"tap", "add", al.TAPName("vm1"), network.TAPMAC(u.name).String()}} {
			e.mustHelper(t, u, args...)
		}
	}
	up(alice, a)
	onlyAlice := hostState(t)
	up(bob, b)
	for _, u := range []struct {
		a   allocation.Allocation
		uid int
	}{{a, alice.uid}, {b, bob.uid}} {
		want := fmt.Sprintf("master %q up true owner %d", u.a.Bridge, u.uid)
		if got := hostState(t); !strings.Contains(got, want) || !strings.Contains(got, "-A FORWARD -j "+u.a.Chains.Forward) {
			t.Errorf("state lacks %s's tap or chains:\n%s", u.a.User, got)
		}
	}
	// Bob takes his network down: alice's is exactly as before bob came.
	for _, args := range [][]string{{"tap", "del", b.TAPName("vm1")}, {"nat", "down"}, {"bridge", "down"}} {
		e.mustHelper(t, bob, args...)
	}
	if diff := cmp.Diff(onlyAlice, hostState(t)); diff != "" {
		t.Errorf("bob's down changed alice's network (-want +got):\n%s", diff)
	}
	e.remove(t, alice)
	e.remove(t, bob)
	want := strings.Replace(initial, "ip_forward 0", "ip_forward 1", 1) // forwarding stays on
	if diff := cmp.Diff(want, hostState(t)); diff != "" {
		t.Errorf("state after both removed (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(e.helper); !os.IsNotExist(err) {
		t.Errorf("helper left after the last user was removed: %v", err)
	}
}
