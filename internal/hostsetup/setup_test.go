package hostsetup

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"banger/internal/allocation"
	"banger/internal/nat"
	"banger/internal/network"
	"banger/internal/privhelper"
	"banger/internal/system"
)

// fakeHost is a stateful stand-in for the host setup changes: accounts
// whose groups gpasswd changes, subuid/subgid files usermod appends to, a
// visudo that checks for the rule line, links and a firewall.
type fakeHost struct {
	mu       sync.Mutex
	accounts map[string]*Account
	groups   map[int]string
	run      *system.Fake
	links    *network.FakeLinks
	fw       *nat.FakeFirewall
	subuid   string
	subgid   string
	procs    []Process
}

func (h *fakeHost) processes() ([]Process, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.procs), nil
}

// signal ends a fake process at once, whatever the signal.
func (h *fakeHost) signal(pid int, _ uint64, _ syscall.Signal) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.procs)
	h.procs = slices.DeleteFunc(h.procs, func(p Process) bool { return p.PID == pid })
	if len(h.procs) == n {
		return fmt.Errorf("no process %d", pid)
	}
	return nil
}

func newFakeHost(t *testing.T, dir string) *fakeHost {
	h := &fakeHost{
		accounts: map[string]*Account{"alice": {Name: "alice", UID: 1001, GID: 1001, Groups: []int{1001}}, "bob": {Name: "bob", UID: 1002, GID: 1002, Groups: []int{1002}}},
		groups:   map[int]string{kvmGID(t, dir): "kvm"},
		links: network.NewFakeLinks(
			network.Link{Name: "lo", Kind: "device", Up: true, Owner: -1, Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
			network.Link{Name: "eth0", Kind: "device", Up: true, Owner: -1, Addrs: []netip.Prefix{netip.MustParsePrefix("192.168.1.20/24")}},
		),
		fw:     nat.NewFakeFirewall(nat.NFT),
		subuid: filepath.Join(dir, "subuid"),
		subgid: filepath.Join(dir, "subgid"),
	}
	// Another user has the first range already.
	for _, f := range []string{h.subuid, h.subgid} {
		if err := os.WriteFile(f, []byte("carol:100000:65536\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h.run = &system.Fake{Handler: h.handle}
	return h
}

// kvmGID makes dir/kvm, a stand-in for /dev/kvm with a group that is not
// root's, and returns that group.
func kvmGID(t *testing.T, dir string) int {
	p := filepath.Join(dir, "kvm")
	if err := os.WriteFile(p, nil, 0o660); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() == 0 {
		if err := os.Chown(p, 0, 4242); err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return int(st.Sys().(*syscall.Stat_t).Gid)
}

func (h *fakeHost) handle(argv []string, _ []byte) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch filepath.Base(argv[0]) {
	case "visudo":
		data, err := os.ReadFile(argv[len(argv)-1])
		if err != nil || !strings.Contains(string(data), "NOPASSWD:NOSETENV:") {
			return nil, fmt.Errorf("visudo: parse error in %s", argv[len(argv)-1])
		}
		return nil, nil
	case "gpasswd":
		acct, group := h.accounts[argv[2]], argv[3]
		for gid, name := range h.groups {
			if name != group {
				continue
			}
			if argv[1] == "-a" {
				acct.Groups = append(acct.Groups, gid)
			} else {
				acct.Groups = slices.DeleteFunc(acct.Groups, func(g int) bool { return g == gid })
			}
		}
		return nil, nil
	case "usermod":
		user := argv[len(argv)-1]
		var start, end int
		fmt.Sscanf(argv[2], "%d-%d", &start, &end)
		for _, f := range []string{h.subuid, h.subgid} {
			data, _ := os.ReadFile(f)
			line := fmt.Sprintf("%s:%d:%d\n", user, start, end-start+1)
			if argv[1] == "--add-subuids" {
				data = append(data, line...)
			} else {
				data = []byte(strings.Replace(string(data), line, "", 1))
			}
			os.WriteFile(f, data, 0o644)
		}
		return nil, nil
	}
	return h.fw.RunInput(context.Background(), nil, argv...)
}

func (h *fakeHost) Lookup(name string) (Account, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a, ok := h.accounts[name]
	if !ok {
		return Account{}, fmt.Errorf("looking up user %s: unknown user", name)
	}
	c := *a
	c.Groups = slices.Clone(a.Groups)
	return c, nil
}

func (h *fakeHost) GroupName(gid int) (string, error) {
	if n, ok := h.groups[gid]; ok {
		return n, nil
	}
	return "", fmt.Errorf("no group %d", gid)
}

func (h *fakeHost) lookPath(name string) (string, error) {
	switch name {
	case "visudo", "gpasswd", "usermod", "newuidmap":
		return "/usr/sbin/" + name, nil
	}
	return h.fw.LookPath(name)
}

type fixture struct {
	opts Options
	deps Deps
	host *fakeHost
	out  *strings.Builder
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "build", "banger-helper")
	if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, []byte("#!helper v1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	sudoers := filepath.Join(dir, "sudoers.d")
	if err := os.Mkdir(sudoers, 0o755); err != nil {
		t.Fatal(err)
	}
	h := newFakeHost(t, dir)
	out := &strings.Builder{}
	f := &fixture{
		opts: Options{
			User:         "alice",
			Registry:     allocation.Registry{Dir: filepath.Join(dir, "etc", "users"), Owner: os.Getuid()},
			HelperSource: src,
			HelperPath:   filepath.Join(dir, "libexec", "banger", "banger-helper"),
			SudoersDir:   sudoers,
			KVMDevice:    filepath.Join(dir, "kvm"),
			TunDevice:    filepath.Join(dir, "no-tun"),
			SubUIDFile:   h.subuid,
			SubGIDFile:   h.subgid,
			ForwardDir:   filepath.Join(dir, "run-banger"),
			RuntimeBase:  filepath.Join(dir, "run-user"),
		},
		host: h,
		out:  out,
	}
	f.deps = Deps{
		EUID: 0, Runner: h.run, LookPath: h.lookPath, Accounts: h, Links: h.links,
		Ports: func() ([]int, error) { return []int{22}, nil },
		Plumbing: func(a allocation.Allocation) (privhelper.Plumbing, error) {
			record, err := nat.ForwardRecordPath(filepath.Join(dir, "run-banger"))
			if err != nil {
				return nil, err
			}
			return privhelper.NewDirect(a, privhelper.DirectDeps{Links: h.links, Runner: h.fw, LookPath: h.fw.LookPath, ReadFile: h.fw.ReadFile, ForwardRecord: record})
		},
		ReadFile:  h.fw.ReadFile,
		Processes: h.processes,
		Signal:    h.signal,
		Out:       out,
	}
	return f
}

func TestSetupAndRemove(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a, err := Setup(ctx, f.opts, f.deps)
	if err != nil {
		t.Fatalf("%v\n%s", err, f.out)
	}
	if a.Bridge != "banger1" || a.UID != 1001 || a.Subnet.String() != "10.213.1.0/24" {
		t.Errorf("allocation = %+v", a)
	}
	if diff := cmp.Diff(allocation.Granted{Groups: []string{"kvm"}, SubIDs: "165536:65536"}, a.Granted); diff != "" {
		t.Errorf("granted (-want +got):\n%s", diff)
	}
	saved, err := f.opts.Registry.Load("alice")
	if err != nil || saved.Granted.SubIDs != "165536:65536" {
		t.Errorf("saved allocation = %+v, %v", saved, err)
	}
	rule, err := os.ReadFile(filepath.Join(f.opts.SudoersDir, "banger-alice"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "#1001 ALL=(root) NOPASSWD:NOSETENV: " + f.opts.HelperPath + "\n"; !strings.HasSuffix(string(rule), want) {
		t.Errorf("sudoers rule:\n%s\nwant it to end with %q", rule, want)
	}
	for path, mode := range map[string]os.FileMode{
		filepath.Join(f.opts.SudoersDir, "banger-alice"): 0o440,
		f.opts.HelperPath:               0o755,
		filepath.Dir(f.opts.HelperPath): 0o755,
	} {
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v, %v; want mode %04o", path, st.Mode().Perm(), err, mode)
		}
	}
	if err := allocation.CheckTrustedPath(f.opts.HelperPath, os.Getuid()); err != nil {
		t.Errorf("installed helper not trusted: %v", err)
	}
	if entries, _ := os.ReadDir(f.opts.SudoersDir); len(entries) != 1 {
		t.Errorf("sudoers.d holds %v, want only banger-alice (no temp file left)", entries)
	}
	wantCalls := []string{
		"/usr/sbin/visudo -c -q -f " + filepath.Join(f.opts.SudoersDir, ".banger-alice.*"),
		"/usr/sbin/gpasswd -a alice kvm",
		"/usr/sbin/usermod --add-subuids 165536-231071 --add-subgids 165536-231071 alice",
	}
	calls := f.host.run.CallLines()
	if len(calls) != 3 || !matchGlob(wantCalls[0], calls[0]) || calls[1] != wantCalls[1] || calls[2] != wantCalls[2] {
		t.Errorf("commands (want %q):\n%s", wantCalls, strings.Join(calls, "\n"))
	}

	// Again: nothing to do, no command runs, the same allocation.
	f.out.Reset()
	again, err := Setup(ctx, f.opts, f.deps)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, again, cmp.Comparer(func(x, y netip.Prefix) bool { return x == y })); diff != "" {
		t.Errorf("second setup changed the allocation (-first +second):\n%s", diff)
	}
	if n := len(f.host.run.Calls()); n != 3 {
		t.Errorf("second setup ran %q", f.host.run.CallLines()[3:])
	}
	for _, s := range []string{"kept", "up to date", "is in place", "is in group kvm", "has subordinate"} {
		if !strings.Contains(f.out.String(), s) {
			t.Errorf("second setup's report lacks %q:\n%s", s, f.out)
		}
	}

	// The user's bangerd brings its network up; remove takes it all back.
	p, err := f.deps.Plumbing(a)
	if err != nil {
		t.Fatal(err)
	}
	before := f.host.fw.Rules(nat.NFT)
	must(t, p.BridgeUp(ctx))
	must(t, p.NATUp(ctx))
	must(t, p.TAPAdd(ctx, a.TAPName("dev"), network.TAPMAC("dev")))
	must(t, f.host.links.AddTAP("bg1-intruder", 1002)) // not alice's: left alone

	f.out.Reset()
	if err := Remove(ctx, f.opts, f.deps); err != nil {
		t.Fatalf("%v\n%s", err, f.out)
	}
	links, _ := f.host.links.List()
	var names []string
	for _, l := range links {
		names = append(names, l.Name)
	}
	if diff := cmp.Diff([]string{"bg1-intruder", "eth0", "lo"}, names); diff != "" {
		t.Errorf("links after remove (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before, f.host.fw.Rules(nat.NFT)); diff != "" {
		t.Errorf("rules after remove (-want +got):\n%s", diff)
	}
	for _, p := range []string{filepath.Join(f.opts.SudoersDir, "banger-alice"), f.opts.Registry.Path("alice"), f.opts.HelperPath} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there after remove (%v)", p, err)
		}
	}
	if acct, _ := f.host.Lookup("alice"); slices.Contains(acct.Groups, kvmGIDOf(f)) {
		t.Error("alice still in kvm after remove")
	}
	if data, _ := os.ReadFile(f.opts.SubUIDFile); strings.Contains(string(data), "alice") {
		t.Errorf("subuid after remove:\n%s", data)
	}
	if !strings.Contains(f.out.String(), "left tap bg1-intruder alone") {
		t.Errorf("remove's report:\n%s", f.out)
	}
	// Removing again is fine and changes nothing.
	if err := Remove(ctx, f.opts, f.deps); err != nil {
		t.Errorf("second remove: %v", err)
	}
}

func kvmGIDOf(f *fixture) int {
	st, _ := os.Stat(f.opts.KVMDevice)
	return int(st.Sys().(*syscall.Stat_t).Gid)
}

func TestSetupTwoUsersAndHelperKept(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	alice, err := Setup(ctx, f.opts, f.deps)
	must(t, err)
	f.opts.User = "bob"
	bob, err := Setup(ctx, f.opts, f.deps)
	must(t, err)
	if alice.Subnet.Overlaps(bob.Subnet) || alice.Bridge == bob.Bridge || alice.DNSPort == bob.DNSPort {
		t.Errorf("alice %+v and bob %+v collide", alice, bob)
	}
	if bob.Granted.SubIDs != "231072:65536" {
		t.Errorf("bob's subordinate ids %q, want the next free range", bob.Granted.SubIDs)
	}
	f.opts.User = "alice"
	must(t, Remove(ctx, f.opts, f.deps))
	if _, err := os.Stat(f.opts.HelperPath); err != nil {
		t.Errorf("helper removed while bob is still set up: %v", err)
	}
	if _, err := f.opts.Registry.Load("bob"); err != nil {
		t.Errorf("bob's allocation: %v", err)
	}
}

func TestSetupRefuses(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		edit func(*fixture)
		want string
	}{
		{"not root", func(f *fixture) { f.deps.EUID = 1001 }, "run it with sudo"},
		{"root itself", func(f *fixture) { f.opts.User = "root" }, "root needs no setup"},
		{"no user", func(f *fixture) { f.opts.User = "" }, "--user NAME"},
		{"unknown user", func(f *fixture) { f.opts.User = "nobody-here" }, "unknown user"},
		{"user with a slash", func(f *fixture) { f.opts.User = "../x" }, "user name"},
		{"missing helper", func(f *fixture) { f.opts.HelperSource = "/nonexistent/banger-helper" }, "make build"},
		{"helper path sudoers would misread", func(f *fixture) { f.opts.HelperPath = f.opts.HelperPath + " ALL" }, "helper path"},
		{"helper dir writable by others", func(f *fixture) {
			must(t, os.MkdirAll(filepath.Dir(f.opts.HelperPath), 0o755))
			must(t, os.Chmod(filepath.Dir(f.opts.HelperPath), 0o777))
		}, "writable by group or others"},
		{"visudo refuses", func(f *fixture) {
			f.host.run.Handler = func(argv []string, in []byte) ([]byte, error) {
				if strings.HasSuffix(argv[0], "visudo") {
					return nil, fmt.Errorf("syntax error")
				}
				return f.host.handle(argv, in)
			}
		}, "nothing installed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tt.edit(f)
			_, err := Setup(ctx, f.opts, f.deps)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Setup: err = %v, want one saying %q", err, tt.want)
			}
			if _, err := os.Stat(filepath.Join(f.opts.SudoersDir, "banger-alice")); err == nil {
				t.Error("a sudoers rule was installed anyway")
			}
		})
	}
}

func TestSudoersRule(t *testing.T) {
	got, err := SudoersRule("alice", 1001, "/usr/local/libexec/banger/banger-helper")
	if err != nil {
		t.Fatal(err)
	}
	want := "# banger: alice's bangerd may run banger's privileged helper as root, and nothing else.\n" +
		"# Written by `sudo banger system setup`; `sudo banger system setup --remove --user alice` removes it.\n" +
		"#1001 ALL=(root) NOPASSWD:NOSETENV: /usr/local/libexec/banger/banger-helper\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rule (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"relative", "/a b", "/a,/bin/sh", "/a:b", "/a/../b", "/a\\b", "/a=b", "/bin/sh *"} {
		if _, err := SudoersRule("alice", 1001, bad); err == nil {
			t.Errorf("SudoersRule accepted helper path %q", bad)
		}
	}
	if n := SudoersFileName("a.b"); n != "banger-a_b" {
		t.Errorf("SudoersFileName(a.b) = %q: sudo would skip a name with '.'", n)
	}
}

func TestSubIDs(t *testing.T) {
	r, err := ParseSubIDs([]byte("# c\ncarol:100000:65536\n1005:165536:65536\n\nsmall:300000:10\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !HasSubIDs(r, "carol", 1) || !HasSubIDs(r, "dave", 1005) || HasSubIDs(r, "small", 7) || HasSubIDs(r, "eve", 9) {
		t.Errorf("HasSubIDs wrong on %+v", r)
	}
	if got := FreeSubIDs(r); got != 231072 {
		t.Errorf("FreeSubIDs = %d, want 231072", got)
	}
	if got := FreeSubIDs(r, []SubIDRange{{"x", 231072, 1}}); got != 362144 {
		t.Errorf("FreeSubIDs past a clash in the gid file = %d, want 362144 (300000+10 blocks 296608)", got)
	}
	for _, bad := range []string{"a:b:c\n", "a:1\n", "a:1:0\n"} {
		if _, err := ParseSubIDs([]byte(bad)); err == nil {
			t.Errorf("ParseSubIDs(%q) accepted", bad)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// matchGlob reports whether s matches pattern with '*' wildcards.
func matchGlob(pattern, s string) bool {
	ok, _ := filepath.Match(pattern, s)
	return ok
}
