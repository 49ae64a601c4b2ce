package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/vishvananda/netns"

	"banger/internal/api"
	"banger/internal/firecracker"
	"banger/internal/system"
	"banger/internal/testutil"
)

// guestEnv is an env whose banger commands (and so its daemon and VMMs)
// run inside a network namespace the test made, with the bootstrapped test
// image available from the cache.
func newGuestEnv(t testing.TB) *env {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "qemu-system-x86_64", "ip", "iptables")
	testutil.Short(t, "boots real guests")
	img := testutil.GuestImage(t)
	e := newEnv(t)
	e.netns = "bge-" + filepath.Base(e.run)[4:]
	if out, err := exec.Command("ip", "netns", "add", e.netns).CombinedOutput(); err != nil {
		t.Fatalf("adding netns: %v: %s", err, out)
	}
	t.Cleanup(func() { e.teardownNetns() })
	if out, err := exec.Command("ip", "netns", "exec", e.netns, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("netns loopback: %v: %s", err, out)
	}
	// The image bootstrap finds the test image in the shared cache (its
	// downloads need the host's network, which the namespace lacks).
	cache := filepath.Join(e.home, "cache", "banger")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(testutil.GuestImageCacheDir(), filepath.Join(cache, "bootstrap")); err != nil {
		t.Fatal(err)
	}
	// The namespace is the test's own, so the default bridge is too.
	e.vars = append(e.vars, "BANGER_VMM=banger-vmm-qemu", "BANGER_STOP_TIMEOUT=20s", "BANGER_BRIDGE=banger0")
	t.Logf("guest image %s (kernel %s)", img.Rootfs, img.KernelVersion)
	return e
}

// teardownNetns removes what the test left: the daemon, any VMM still
// running, NAT rules, and the namespaces.
func (e *env) teardownNetns() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if vms, err := e.client().VMs(ctx, true); err == nil {
		for _, v := range vms {
			if v.PID > 0 && system.ProcessAlive(v.PID, 0) {
				e.t.Errorf("vmm of %s (pid %d) still running at teardown; killing it", v.Name, v.PID)
				for _, p := range system.Tree(v.PID) {
					_ = system.Signal(p, 0, 9)
				}
			}
		}
	}
	e.stopDaemon()
	// A VMM the daemon no longer lists (the daemon was killed and never
	// restarted) is found by its socket under this env's runtime directory.
	for sock, p := range firecracker.ServingSockets() {
		if strings.HasPrefix(sock, e.run+string(filepath.Separator)) && system.ProcessAlive(p.PID, 0) {
			e.t.Logf("vmm pid %d (%s) still running at teardown, unknown to the daemon; killing it", p.PID, sock)
			for _, q := range system.Tree(p.PID) {
				_ = system.Signal(q, 0, 9)
			}
		}
	}
	for _, ns := range append([]string{e.netns}, *e.extraNetns...) {
		_ = exec.Command("ip", "netns", "del", ns).Run()
	}
}

var ipv4 = regexp.MustCompile(`\b\d+\.\d+\.\d+\.\d+\b`)

func (e *env) vm(name string) api.VM {
	e.t.Helper()
	var v api.VM
	if err := json.Unmarshal([]byte(e.must("vm", "show", name, "-o", "json")), &v); err != nil {
		e.t.Fatal(err)
	}
	return v
}

func (e *env) ssh(name string, command string) string {
	e.t.Helper()
	return strings.TrimSpace(e.must("vm", "ssh", name, "--", command))
}

// inNetns runs fn on a thread that has entered the test's namespace.
func (e *env) inNetns(fn func()) {
	e.t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		e.t.Fatal(err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(e.netns)
	if err != nil {
		e.t.Fatal(err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		e.t.Fatal(err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			panic(err) // the thread must not go back to the pool in the wrong namespace
		}
	}()
	fn()
}

// resolve asks the daemon's host DNS listener for NAME.vm.
func (e *env) resolve(name string) (string, int) {
	e.t.Helper()
	server := e.dnsAddr()
	var addr string
	var rcode int
	e.inNetns(func() {
		m := new(mdns.Msg)
		m.SetQuestion(name+".vm.", mdns.TypeA)
		c := &mdns.Client{Timeout: 2 * time.Second}
		r, _, err := c.Exchange(m, server)
		if err != nil {
			e.t.Fatalf("querying %s.vm: %v", name, err)
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

func TestGuestLifecycle(t *testing.T) {
	e := newGuestEnv(t)
	start := time.Now()
	e.must("image", "bootstrap", "base")
	t.Logf("image bootstrap (cached): %s", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	out := e.must("vm", "create", "dev", "--cpus", "1", "--memory", "512M", "--disk", "256M", "--wait")
	t.Logf("create to ssh ready: %s", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(out, "dev.vm") {
		t.Errorf("create output = %q", out)
	}
	dev := e.vm("dev")
	// Right after create, while systemd still boots: a file put in /tmp
	// now must outlive the boot's clean-up.
	early := filepath.Join(t.TempDir(), "early")
	if err := os.WriteFile(early, []byte("kept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.must("vm", "cp", early, "dev:/tmp/early")

	t.Run("ssh and identity", func(t *testing.T) {
		e := e.with(t)
		if got := e.ssh("dev", "cat /etc/hostname"); got != "dev" {
			t.Errorf("hostname = %q, want dev", got)
		}
	})
	t.Run("sshd starts before systemd, which adopts it", func(t *testing.T) {
		e := e.with(t)
		// The initramfs marks sshd listening before systemd's banner.
		kmsg := e.ssh("dev", "dmesg")
		sshd, systemd := strings.Index(kmsg, "banger-boot: sshd"), strings.Index(kmsg, "running in system mode")
		if sshd < 0 || systemd < 0 || sshd > systemd {
			t.Errorf("sshd mark at %d, systemd banner at %d in the guest's kernel log; want sshd first:\n%s", sshd, systemd, kmsg)
		}
		// Once systemd has finished, ssh.service's main process is that
		// sshd (started without -D), in the service's cgroup.
		got := e.ssh("dev", `systemctl is-system-running --wait >/dev/null; p=$(cat /run/sshd.pid); echo "$(systemctl show -p MainPID --value ssh) $p $(cat /proc/$p/cgroup) $(tr '\0' ' ' </proc/$p/cmdline)"`)
		f := strings.Fields(got)
		if len(f) < 4 || f[0] != f[1] || f[2] != "0::/system.slice/ssh.service" || strings.Contains(got, " -D ") {
			t.Errorf("main pid, sshd.pid, cgroup, command line = %q; want the early sshd adopted by ssh.service", got)
		}
		if got := e.ssh("dev", "cat /tmp/early"); got != "kept" {
			t.Errorf("/tmp/early, copied in right after create, reads %q once the boot finished; want kept", got)
		}
		// A restart starts a new sshd the usual way, and SSH still answers.
		after := e.ssh("dev", "systemctl restart ssh && systemctl is-active ssh && systemctl show -p MainPID --value ssh")
		if a := strings.Fields(after); len(a) != 2 || a[0] != "active" || len(f) == 0 || a[1] == f[0] || a[1] == "0" {
			t.Errorf("after systemctl restart ssh: %q (before: main pid %v)", after, f)
		}
		if got := e.ssh("dev", "echo answered"); got != "answered" {
			t.Errorf("ssh after the restart: %q", got)
		}
	})
	t.Run("dns from host and guest", func(t *testing.T) {
		e := e.with(t)
		if ip, _ := e.resolve("dev"); ip != dev.IP {
			t.Errorf("dev.vm resolves to %q on the host listener, want %s", ip, dev.IP)
		}
		if ip, rcode := e.resolve("nope"); ip != "" || rcode != mdns.RcodeNameError {
			t.Errorf("nope.vm = %q rcode %d, want NXDOMAIN", ip, rcode)
		}
		// The guest resolves through the gateway, which proves it reaches it.
		if got := e.ssh("dev", "getent hosts dev.vm"); !strings.HasPrefix(got, dev.IP) {
			t.Errorf("guest getent hosts dev.vm = %q", got)
		}
	})
	t.Run("work disk survives stop, start and resize", func(t *testing.T) {
		e := e.with(t)
		e.ssh("dev", "mountpoint -q /work && echo kept > /work/marker && sync")
		e.must("vm", "stop", "dev")
		if ip, rcode := e.resolve("dev"); ip != "" || rcode != mdns.RcodeNameError {
			t.Errorf("stopped dev.vm still resolves: %q", ip)
		}
		e.must("vm", "resize", "dev", "--disk", "512M")
		e.must("vm", "start", "dev", "--wait")
		again := e.vm("dev")
		if again.IP != dev.IP {
			t.Errorf("address changed across stop/start: %s -> %s", dev.IP, again.IP)
		}
		if got := e.ssh("dev", "cat /work/marker"); got != "kept" {
			t.Errorf("/work/marker = %q after stop/start/resize", got)
		}
		size := e.ssh("dev", "df -B1M --output=size /work | tail -1")
		var mb int
		fmt.Sscan(size, &mb)
		if mb < 400 {
			t.Errorf("/work is %d MiB after resize to 512M", mb)
		}
		dev = again
	})
	t.Run("daemon kill -9 leaves the vm running and is adopted", func(t *testing.T) {
		e := e.with(t)
		st := e.status()
		if err := system.Signal(st.PID, 0, 9); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		if !system.ProcessAlive(dev.PID, 0) {
			t.Fatalf("vmm pid %d died with the daemon", dev.PID)
		}
		v := e.vm("dev") // restarts the daemon
		if v.State != "running" || v.PID != dev.PID {
			t.Errorf("after daemon kill -9: %s pid %d, want running pid %d", v.State, v.PID, dev.PID)
		}
		if e.status().PID == st.PID {
			t.Error("daemon was not restarted")
		}
		if got := e.ssh("dev", "echo alive"); got != "alive" {
			t.Errorf("ssh after daemon restart = %q", got)
		}
	})
	t.Run("vmm kill -9 is noticed within 2s", func(t *testing.T) {
		e := e.with(t)
		for _, p := range system.Tree(dev.PID) {
			_ = system.Signal(p, 0, 9)
		}
		killed := time.Now()
		ctx := context.Background()
		for {
			v, err := e.client().VM(ctx, "dev")
			if err == nil && v.State == "stopped" {
				t.Logf("noticed after %s: %s", time.Since(killed).Round(time.Millisecond), v.Reason)
				if !strings.Contains(v.Reason, "console.log") {
					t.Errorf("reason lacks the log path: %q", v.Reason)
				}
				break
			}
			if time.Since(killed) > 2*time.Second {
				t.Fatalf("vm still %q 2s after its VMM was killed", v.State)
			}
			time.Sleep(50 * time.Millisecond)
		}
		e.must("vm", "start", "dev", "--wait")
		dev = e.vm("dev")
	})
	t.Run("two vms reach each other by name", func(t *testing.T) {
		e := e.with(t)
		e.must("vm", "create", "web", "--cpus", "1", "--memory", "512M", "--disk", "64M", "--wait")
		web := e.vm("web")
		if web.IP == dev.IP {
			t.Fatalf("both vms got %s", web.IP)
		}
		got := e.ssh("dev", "getent hosts web.vm && timeout 30 bash -c 'exec 3<>/dev/tcp/web.vm/22 && head -c 7 <&3'")
		if !strings.Contains(got, web.IP) || !strings.Contains(got, "SSH-2.0") {
			t.Errorf("dev -> web.vm: %q", got)
		}
	})
	t.Run("nat masquerades to the uplink", func(t *testing.T) {
		e := e.with(t)
		up := e.uplink()
		got := e.ssh("dev", "timeout 5 bash -c 'exec 3<>/dev/tcp/198.18.0.2/8080 && cat <&3'")
		if strings.TrimSpace(got) != "198.18.0.1" {
			t.Errorf("uplink server saw %q, want the host's uplink address 198.18.0.1", got)
		}
		e.must("internal", "nat", "down")
		_, errOut, code := e.banger("vm", "ssh", "dev", "--", "timeout 3 bash -c 'exec 3<>/dev/tcp/198.18.0.2/8080 && cat <&3'")
		if code == 0 {
			t.Errorf("guest still reaches the uplink after nat down (%s)", errOut)
		}
		e.must("internal", "nat", "up")
		up()
	})
	t.Run("daemon kill -9 mid-create is explained or repaired", func(t *testing.T) {
		e := e.with(t)
		known := map[string]bool{}
		for sock := range firecracker.ServingSockets() {
			known[sock] = true
		}
		daemonPID := e.status().PID
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		create := exec.CommandContext(ctx, "ip", "netns", "exec", e.netns, filepath.Join(e.bin, "banger"), "vm", "create", "mid", "--memory", "256M", "--disk", "64M", "--wait")
		create.Env = append(cleanEnv(), e.vars...)
		if err := create.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill the daemon as soon as the new VMM serves its socket: usually
		// inside the boot step, before the daemon records the VMM.
		var sock string
		for sock == "" && ctx.Err() == nil {
			for s := range firecracker.ServingSockets() {
				if !known[s] && strings.HasPrefix(s, e.run) {
					sock = s
				}
			}
			if sock == "" {
				time.Sleep(5 * time.Millisecond)
			}
		}
		if err := system.Signal(daemonPID, 0, 9); err != nil {
			t.Fatal(err)
		}
		_ = create.Wait()
		v := e.vm("mid") // restarts the daemon, which reconciles
		serving, still := firecracker.ServingSockets()[sock]
		switch v.State {
		case "error":
			// Killed before the VMM was recorded: explained, VMM stopped.
			t.Logf("daemon killed before the vmm was recorded: %s", v.Reason)
			if !strings.Contains(v.Reason, "interrupted") || !strings.Contains(v.Reason, "banger vm rm mid") {
				t.Errorf("reason = %q, want an explanation naming `banger vm rm mid`", v.Reason)
			}
			if still {
				t.Errorf("the unrecorded vmm for mid (%s, pid %d) still runs after reconcile", sock, serving.PID)
			}
		case "stopped":
			// Killed while booting the made VM, before the VMM was
			// recorded: explained, VMM stopped, startable again.
			t.Logf("daemon killed while booting, before the vmm was recorded: %s", v.Reason)
			if !strings.Contains(v.Reason, "interrupted") || !strings.Contains(v.Reason, "banger vm start mid") {
				t.Errorf("reason = %q, want an explanation naming `banger vm start mid`", v.Reason)
			}
			if still {
				t.Errorf("the unrecorded vmm for mid (%s, pid %d) still runs after reconcile", sock, serving.PID)
			}
		case "running":
			// Killed after the VMM was recorded: adopted.
			t.Logf("daemon killed after the vmm was recorded: adopted pid %d", v.PID)
			if !still || serving.PID != v.PID {
				t.Errorf("running vm's pid %d does not serve %s (serving: %v %+v)", v.PID, sock, still, serving)
			}
		default:
			t.Errorf("vm after daemon kill -9 mid-create: %s %q, want error, stopped or running", v.State, v.Reason)
		}
		e.must("vm", "rm", "--force", "mid")
	})
	t.Run("rm --all leaves nothing behind", func(t *testing.T) {
		e := e.with(t)
		vms, err := e.client().VMs(context.Background(), true)
		if err != nil {
			t.Fatal(err)
		}
		e.must("vm", "rm", "--all", "--force")
		time.Sleep(300 * time.Millisecond)
		for _, v := range vms {
			for _, p := range []string{v.RootDisk, v.WorkDisk, v.ConsoleLog} {
				if _, err := os.Stat(p); err == nil {
					t.Errorf("%s survived rm", p)
				}
			}
			if system.ProcessAlive(v.PID, 0) {
				t.Errorf("vmm of %s (pid %d) survived rm", v.Name, v.PID)
			}
			if ip, _ := e.resolve(v.Name); ip != "" {
				t.Errorf("%s.vm still resolves after rm", v.Name)
			}
		}
		links, _ := exec.Command("ip", "netns", "exec", e.netns, "ip", "-o", "link").CombinedOutput()
		if strings.Contains(string(links), "bg-") {
			t.Errorf("taps left after rm:\n%s", links)
		}
		for _, dir := range []string{filepath.Join(e.run, "banger", "vms"), filepath.Join(e.home, "data", "banger", "vms")} {
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("%s still holds %d entries", dir, len(entries))
			}
		}
		rules, _ := exec.Command("ip", "netns", "exec", e.netns, "iptables-save").CombinedOutput()
		for _, v := range vms {
			if strings.Contains(string(rules), v.IP+"/32") || strings.Contains(string(rules), v.TAP) {
				t.Errorf("per-vm rule for %s left:\n%s", v.Name, rules)
			}
		}
	})
}

// uplink plays the host's uplink: a second namespace joined by a veth pair,
// holding a TCP server that answers with the address it sees. It returns a
// function that stops the server.
func (e *env) uplink() func() {
	e.t.Helper()
	up := e.netns + "u"
	*e.extraNetns = append(*e.extraNetns, up)
	run := func(args ...string) {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			e.t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	run("ip", "netns", "add", up)
	run("ip", "link", "add", "bgup0", "netns", e.netns, "type", "veth", "peer", "name", "bgup1", "netns", up)
	run("ip", "netns", "exec", e.netns, "ip", "addr", "add", "198.18.0.1/24", "dev", "bgup0")
	run("ip", "netns", "exec", e.netns, "ip", "link", "set", "bgup0", "up")
	run("ip", "netns", "exec", e.netns, "ip", "route", "add", "default", "via", "198.18.0.2")
	run("ip", "netns", "exec", up, "ip", "addr", "add", "198.18.0.2/24", "dev", "bgup1")
	run("ip", "netns", "exec", up, "ip", "link", "set", "bgup1", "up")
	run("ip", "netns", "exec", up, "ip", "link", "set", "lo", "up")
	ctx, cancel := context.WithCancel(context.Background())
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", up, os.Args[0], "-test.run", "^TestUplinkServerHelper$")
	srv.Env = append(os.Environ(), "BANGER_E2E_UPLINK_LISTEN=198.18.0.2:8080")
	stdout, _ := srv.StdoutPipe()
	if err := srv.Start(); err != nil {
		e.t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening") {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		e.t.Fatal("uplink server did not start")
	}
	return func() { cancel(); _ = srv.Wait() }
}

// TestUplinkServerHelper is the uplink server run by the NAT test.
func TestUplinkServerHelper(t *testing.T) {
	addr := os.Getenv("BANGER_E2E_UPLINK_LISTEN")
	if addr == "" {
		t.Skip("helper process for TestGuestLifecycle")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("listening")
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		c, err := l.Accept()
		if err != nil {
			return
		}
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		fmt.Fprintln(c, host)
		c.Close()
	}
}

func TestQuickstartScript(t *testing.T) {
	e := newGuestEnv(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", filepath.Join(root, "scripts", "quickstart.sh"))
	cmd.Env = append(append(cleanEnv(), e.vars...), "BANGER_QUICKSTART_NETNS="+e.netns, "BANGER_QUICKSTART_SKIP_APT=1", "BANGER_QUICKSTART_VM=qs")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("quickstart: %v\n%s\ndaemon log:\n%s", err, out, e.daemonLogTail())
	}
	if !strings.Contains(string(out), "hello from qs: Linux") {
		t.Errorf("quickstart did not run the command in the VM:\n%s", out)
	}
	e.must("vm", "rm", "--force", "qs")
}
