package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"banger/internal/testutil"
)

// osUser is an ordinary user a test created.
type osUser struct {
	name     string
	uid, gid int
}

// asNewUser returns an env for an ordinary user the test creates, in g's
// network namespace, after `banger system setup --user` for it (unless
// setup is false): the same binaries and guest image, XDG directories of
// its own. Cleanup removes the setup, the user and its files.
func (g *env) asNewUser(t testing.TB, setup bool) *env {
	t.Helper()
	testutil.RequireTool(t, "useradd", "userdel", "setpriv", "sudo", "visudo")
	var b [3]byte
	_, _ = rand.Read(b[:])
	name := "bgu" + hex.EncodeToString(b[:])
	if out, err := exec.Command("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Fatalf("adding user %s: %v: %s", name, err, out)
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	home := filepath.Join(os.TempDir(), name)
	e := &env{t: t, bin: g.bin, home: home, run: filepath.Join(home, "run"), netns: g.netns, extraNetns: g.extraNetns, user: &osUser{name: name, uid: uid, gid: gid}}
	e.vars = []string{
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, "config"),
		"XDG_STATE_HOME=" + filepath.Join(home, "state"),
		"XDG_DATA_HOME=" + filepath.Join(home, "data"),
		"XDG_CACHE_HOME=" + filepath.Join(home, "cache"),
		"XDG_RUNTIME_DIR=" + e.run,
		"BANGER_DAEMON=" + filepath.Join(g.bin, "bangerd"),
		"BANGER_VMM=banger-vmm-qemu", "BANGER_STOP_TIMEOUT=20s",
		"NO_COLOR=1",
	}
	t.Cleanup(func() {
		e.stopDaemon()
		// As the tests do after rm: whatever still runs as the user is a leak.
		// A daemon asked to stop exits just after its socket goes.
		deadline := time.Now().Add(5 * time.Second)
		for len(livingProcesses(name)) > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if procs := livingProcesses(name); len(procs) > 0 {
			t.Errorf("processes of %s left at teardown: %q", name, procs)
			_ = exec.Command("pkill", "-KILL", "-u", name).Run()
		}
		root := &env{t: t, bin: g.bin, netns: g.netns, vars: g.vars}
		if out, errOut, code := root.banger("system", "setup", "--remove", "--user", name); code != 0 {
			t.Errorf("system setup --remove --user %s: exit %d\n%s%s", name, code, out, errOut)
		}
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("removing user %s: %v: %s", name, err, out)
		}
		os.RemoveAll(home)
	})
	// The binaries and the paths to them must be readable by the user.
	for dir := g.bin; dir != "/" && dir != os.TempDir(); dir = filepath.Dir(dir) {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Its own copy of the cached guest image, so bootstrap finds it.
	cache := filepath.Join(home, "cache", "banger", "bootstrap")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(testutil.GuestImageCacheDir(), "images")
	if out, err := exec.Command("cp", "-a", "--sparse=always", src, cache).CombinedOutput(); err != nil {
		t.Fatalf("copying the guest image cache: %v: %s", err, out)
	}
	if err := os.MkdirAll(e.run, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chown", "-R", name+":", home).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v: %s", err, out)
	}
	if setup {
		root := &env{t: t, bin: g.bin, netns: g.netns, vars: g.vars}
		out := root.must("system", "setup", "--user", name)
		t.Logf("system setup --user %s:\n%s", name, out)
	}
	return e
}

// fqdn asks the daemon's host DNS listener for a name.
func (e *env) lookup(fqdn string) (string, int) {
	e.t.Helper()
	server := e.dnsAddr()
	var addr string
	var rcode int
	e.inNetns(func() {
		m := new(mdns.Msg)
		m.SetQuestion(mdns.Fqdn(fqdn), mdns.TypeA)
		c := &mdns.Client{Timeout: 2 * time.Second}
		r, _, err := c.Exchange(m, server)
		if err != nil {
			e.t.Fatalf("querying %s: %v", fqdn, err)
		}
		rcode = r.Rcode
		for _, rr := range r.Answer {
			if a, ok := rr.(*mdns.A); ok {
				addr = a.A.String()
			}
		}
	})
	return addr, rcode
}

// TestOrdinaryUsers runs the whole story as users who are not root, after
// `banger system setup` for them, and two of them at once.
func TestOrdinaryUsers(t *testing.T) {
	g := newGuestEnv(t)
	alice := g.asNewUser(t, true)
	bob := g.asNewUser(t, true)

	t.Run("doctor is green", func(t *testing.T) {
		a := alice.with(t)
		out, errOut, code := a.banger("doctor")
		if code != 0 || !doctorSays(out, "privileges", "ok") {
			t.Errorf("doctor as %s: exit %d\n%s%s", a.user.name, code, out, errOut)
		}
	})
	t.Run("bootstrap, create, ssh, stop, start, resize", func(t *testing.T) {
		a := alice.with(t)
		a.must("image", "bootstrap", "base")
		out := a.must("vm", "create", "dev", "--cpus", "1", "--memory", "512M", "--disk", "256M")
		zone := a.user.name + ".vm"
		if !strings.Contains(out, "dev."+zone) {
			t.Errorf("create output %q does not name dev.%s", out, zone)
		}
		v := a.vm("dev")
		if got := a.ssh("dev", "cat /etc/hostname; id -u"); got != "dev\n0" {
			t.Errorf("guest hostname and uid = %q", got)
		}
		if ip, _ := a.lookup("dev." + zone); ip != v.IP {
			t.Errorf("dev.%s resolves to %q, want %s", zone, ip, v.IP)
		}
		if got := a.ssh("dev", "getent hosts dev.vm"); !strings.HasPrefix(got, v.IP) {
			t.Errorf("the guest resolves dev.vm as %q, want %s", got, v.IP)
		}
		// The VMM runs as the user, and so does everything under it.
		if out, _ := exec.Command("ps", "-o", "uid=", "-p", strconv.Itoa(v.PID)).Output(); atoi(string(out)) != a.user.uid {
			t.Errorf("vmm pid %d runs as uid %q, want %d (%s)", v.PID, out, a.user.uid, a.user.name)
		}
		a.ssh("dev", "echo kept > /work/marker && sync")
		a.must("vm", "resize", "dev", "--disk", "512M")
		if size := a.ssh("dev", "df -B1M --output=size /work | tail -1"); atoi(size) < 400 {
			t.Errorf("/work is %s MiB after an online resize to 512M", size)
		}
		a.must("vm", "stop", "dev")
		a.must("vm", "start", "dev")
		if got := a.ssh("dev", "cat /work/marker"); got != "kept" {
			t.Errorf("/work/marker = %q after stop and start", got)
		}
	})
	t.Run("image build", func(t *testing.T) {
		a := alice.with(t)
		file := filepath.Join(a.home, "motd")
		if err := os.WriteFile(file, []byte("built by "+a.user.name+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		a.must("image", "build", "custom", "--from", "base", "--no-packages", "--cpus", "1", "--memory", "512M", "--copy", file+":/etc/motd")
		a.must("vm", "create", "built", "--image", "custom", "--cpus", "1", "--memory", "512M", "--disk", "64M")
		if got := a.ssh("built", "cat /etc/motd"); got != "built by "+a.user.name {
			t.Errorf("/etc/motd in a vm of the built image = %q", got)
		}
		a.must("vm", "rm", "--force", "built")
	})
	t.Run("two users at once", func(t *testing.T) {
		b := bob.with(t)
		a := alice.with(t)
		b.must("image", "bootstrap", "base")
		b.must("vm", "create", "dev", "--cpus", "1", "--memory", "512M", "--disk", "64M")
		av, bv := a.vm("dev"), b.vm("dev")
		if av.IP == bv.IP || av.TAP == bv.TAP {
			t.Errorf("alice's and bob's vms share an address or tap: %s %s, %s %s", av.IP, av.TAP, bv.IP, bv.TAP)
		}
		if got := b.ssh("dev", "cat /etc/hostname"); got != "dev" {
			t.Errorf("bob's dev hostname = %q", got)
		}
		// Each daemon knows only its own VMs and answers only its own zone.
		if out := b.must("vm", "list", "-o", "json"); strings.Count(out, `"name"`) != 1 {
			t.Errorf("bob sees more than his vm:\n%s", out)
		}
		if ip, rcode := b.lookup("dev." + a.user.name + ".vm"); ip != "" || rcode != mdns.RcodeNameError {
			t.Errorf("bob's daemon answers for alice's zone: %q rcode %d", ip, rcode)
		}
		// Bob cannot use alice's daemon.
		aliceSock := filepath.Join(a.run, "banger", "bangerd.sock")
		bobWithAliceSock := *b
		bobWithAliceSock.vars = append(append([]string(nil), b.vars...), "XDG_RUNTIME_DIR="+a.run, "BANGER_NO_AUTOSTART=1")
		if out, errOut, code := bobWithAliceSock.banger("vm", "list"); code == 0 {
			t.Errorf("bob listed alice's vms through %s:\n%s%s", aliceSock, out, errOut)
		}
		b.must("vm", "rm", "--force", "dev")
	})
	t.Run("rm leaves nothing behind", func(t *testing.T) {
		a := alice.with(t)
		v := a.vm("dev")
		a.must("vm", "rm", "--force", "dev")
		a.must("image", "rm", "custom")
		links, _ := exec.Command("ip", "netns", "exec", a.netns, "ip", "-o", "link").CombinedOutput()
		if strings.Contains(string(links), v.TAP) {
			t.Errorf("tap %s left after rm:\n%s", v.TAP, links)
		}
		for _, dir := range []string{filepath.Join(a.run, "banger", "vms"), filepath.Join(a.home, "data", "banger", "vms")} {
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("%s still holds %d entries", dir, len(entries))
			}
		}
		if procs := livingProcesses(a.user.name); len(procs) != 1 || procs[0] != "bangerd" {
			t.Errorf("processes of %s after rm, want only bangerd: %q", a.user.name, procs)
		}
	})
}

// TestQuickstartScriptAsAUser runs the quickstart as a user who is not
// root and may use sudo for the setup step, inside the test's namespace.
func TestQuickstartScriptAsAUser(t *testing.T) {
	g := newGuestEnv(t)
	u := g.asNewUser(t, false)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	// A checkout of the user's own: the script and the built binaries.
	checkout := filepath.Join(u.home, "banger")
	for _, dir := range []string{"scripts", "bin"} {
		if err := os.MkdirAll(filepath.Join(checkout, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copies := [][2]string{{filepath.Join(root, "scripts", "quickstart.sh"), filepath.Join(checkout, "scripts")}}
	for _, b := range []string{"banger", "bangerd", "banger-vmm-qemu", "banger-helper"} {
		copies = append(copies, [2]string{filepath.Join(g.bin, b), filepath.Join(checkout, "bin")})
	}
	for _, c := range copies {
		if out, err := exec.Command("cp", c[0], c[1]).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v: %s", err, out)
		}
	}
	if out, err := exec.Command("chown", "-R", u.user.name+":", checkout).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v: %s", err, out)
	}
	// The user may run the setup step with sudo, as the README's user
	// would. (A rule naming a file the user can write is root for them; it
	// exists only in this throwaway test.)
	rule := filepath.Join("/etc/sudoers.d", "banger-test-"+u.user.name)
	line := fmt.Sprintf("%s ALL=(root) NOPASSWD: %s system setup\n", u.user.name, filepath.Join(checkout, "bin", "banger"))
	if err := os.WriteFile(rule, []byte(line), 0o440); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(rule) })
	// Before the setup, doctor and a create name it and its command.
	if out, _, code := u.banger("doctor"); code != 1 || !doctorSays(out, "privileges", "fail") || !strings.Contains(out, "sudo banger system setup") {
		t.Errorf("doctor before setup: exit %d\n%s", code, out)
	}
	if _, errOut, code := u.banger("vm", "create", "early", "--no-wait"); code == 0 || !strings.Contains(errOut, "not set up") || !strings.Contains(errOut, "sudo banger system setup") {
		t.Errorf("create before setup: exit %d\n%s", code, errOut)
	}
	// The daemon started before the setup; the next command restarts it.
	argv := []string{"ip", "netns", "exec", u.netns, "setpriv", "--reuid=" + u.user.name, "--regid=" + strconv.Itoa(u.user.gid), "--init-groups", "--",
		"sh", filepath.Join(checkout, "scripts", "quickstart.sh")}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append(cleanEnv(), u.vars...), "BANGER_QUICKSTART_SKIP_APT=1", "BANGER_QUICKSTART_SKIP_BUILD=1", "BANGER_QUICKSTART_VM=qs")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("quickstart as %s: %v\n%s\ndaemon log:\n%s", u.user.name, err, out, u.daemonLogTail())
	}
	for _, want := range []string{"setting banger up for " + u.user.name, "hello from qs: Linux"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("quickstart output lacks %q:\n%s", want, out)
		}
	}
	u.must("vm", "rm", "--force", "qs")
}

func atoi(s string) int {
	var n int
	fmt.Sscan(strings.TrimSpace(s), &n)
	return n
}

// livingProcesses lists the commands of a user's processes that have not
// exited. An exited child (a zombie) waits for its new parent, here the
// sandbox's init, to collect it: it holds no resources, so it is no leak.
func livingProcesses(user string) []string {
	out, _ := exec.Command("ps", "-u", user, "-o", "stat=,comm=").Output()
	var procs []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		stat, comm, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && !strings.HasPrefix(stat, "Z") {
			procs = append(procs, strings.TrimSpace(comm))
		}
	}
	return procs
}

// doctorSays reports whether doctor's table has the check with the status,
// whatever the width of its columns.
func doctorSays(out, check, status string) bool {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == check && f[1] == status {
			return true
		}
	}
	return false
}
