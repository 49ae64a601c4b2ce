package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCloneGivesANewIdentity is `banger vm clone` and fast create as a
// user runs them: a running VM with a process in it is cloned (and runs
// on), then suspended and cloned again; then two VMs are created from one
// warm template (`banger image warm`). Every VM must differ in address,
// MAC, hostname, machine-id and host key, and the two restored from one
// template in the bytes /dev/urandom gives right after; they reach each
// other by name, keep the host's time and keep their files to themselves.
// Refusals (an existing name, a stopped source) change nothing.
func TestCloneGivesANewIdentity(t *testing.T) {
	e := newGuestEnv(t)
	e.must("image", "bootstrap", "base")
	e.must("vm", "create", "src", "--cpus", "1", "--memory", "384M", "--disk", "256M", "--wait")
	pid := e.ssh("src", "nohup sh -c 'i=0; while :; do i=$((i+1)); echo $i > /dev/shm/count; sleep 0.2; done' >/dev/null 2>&1 & echo $!")
	e.ssh("src", "echo from-before > /work/before")

	start := time.Now()
	e.must("vm", "clone", "src", "c1")
	t.Logf("clone of a running vm to ssh ready: %s", time.Since(start).Round(time.Millisecond))
	if v := e.vm("src"); v.State != "running" {
		t.Fatalf("the source is %s after the clone, want running", v.State)
	}
	// The source's process runs on, and so does its copy in the clone.
	for _, name := range []string{"src", "c1"} {
		out := e.ssh(name, "kill -0 "+pid+" && echo alive; cat /work/before; a=$(cat /dev/shm/count); sleep 1; b=$(cat /dev/shm/count); [ $b -gt $a ] && echo counting")
		if out != "alive\nfrom-before\ncounting" {
			t.Errorf("%s after the clone: %q, want the process alive and counting and /work/before", name, out)
		}
	}

	e.must("vm", "suspend", "src")
	start = time.Now()
	e.must("vm", "clone", "src", "c2")
	t.Logf("clone of a suspended vm to ssh ready: %s", time.Since(start).Round(time.Millisecond))
	if v := e.vm("src"); v.State != "suspended" {
		t.Fatalf("the source is %s after cloning it suspended, want suspended", v.State)
	}
	e.must("vm", "start", "src", "--wait")

	// Fast create: two VMs restored from one warm template.
	start = time.Now()
	e.must("image", "warm", "base", "--cpus", "1", "--memory", "384M", "--disk", "256M")
	t.Logf("image warm: %s", time.Since(start).Round(time.Millisecond))
	random := map[string]string{}
	for _, name := range []string{"f1", "f2"} {
		start := time.Now()
		_, errOut, code := e.banger("vm", "create", name, "--cpus", "1", "--memory", "384M", "--disk", "256M")
		if code != 0 || !strings.Contains(errOut, "restoring from warm template") {
			t.Fatalf("vm create %s with a warm template: exit %d\n%s", name, code, errOut)
		}
		// The template's identity agent gave the identity, not SSH.
		if !strings.Contains(errOut, "through the template's identity agent") || strings.Contains(errOut, "going over SSH") {
			t.Errorf("vm create %s did not take its identity from the template's agent:\n%s", name, errOut)
		}
		t.Logf("vm create from the warm template to ssh ready: %s", time.Since(start).Round(time.Millisecond))
		// Right after the restore: both left the same saved state.
		random[name] = e.ssh(name, "head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'")
	}
	if random["f1"] == random["f2"] || len(random["f1"]) != 32 {
		t.Errorf("/dev/urandom right after the restore: f1 %s, f2 %s; want 16 bytes that differ", random["f1"], random["f2"])
	}

	all := []string{"src", "c1", "c2", "f1", "f2"}
	seen := map[string]map[string]string{} // what → value → vm
	for _, name := range all {
		v := e.vm(name)
		if v.State != "running" {
			t.Fatalf("%s is %s", name, v.State)
		}
		lo := time.Now().Add(-time.Second)
		out := e.ssh(name, "dev=$(ip -o route show default | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p'); hostname; cat /etc/machine-id; cat /sys/class/net/$dev/address; ip -4 -o addr show dev $dev | awk '{print $4}'; cut -d' ' -f2 /etc/ssh/ssh_host_ed25519_key.pub; date +%s.%N")
		hi := time.Now().Add(time.Second)
		f := strings.Split(out, "\n")
		if len(f) != 6 {
			t.Fatalf("%s says %q", name, out)
		}
		if f[0] != name {
			t.Errorf("%s's hostname is %s", name, f[0])
		}
		if f[2] != v.MAC {
			t.Errorf("%s's MAC is %s in the guest, %s in banger", name, f[2], v.MAC)
		}
		if !strings.HasPrefix(f[3], v.IP+"/") {
			t.Errorf("%s's address is %s in the guest, %s in banger", name, f[3], v.IP)
		}
		if g, err := strconv.ParseFloat(f[5], 64); err != nil || time.Unix(0, int64(g*1e9)).Before(lo) || time.Unix(0, int64(g*1e9)).After(hi) {
			t.Errorf("%s's clock says %s, host between %s and %s", name, f[5], lo.UTC(), hi.UTC())
		}
		for i, what := range []string{"hostname", "machine-id", "MAC", "address", "host key"} {
			if seen[what] == nil {
				seen[what] = map[string]string{}
			}
			if other, dup := seen[what][f[i]]; dup {
				t.Errorf("%s and %s share the %s %s", other, name, what, f[i])
			}
			seen[what][f[i]] = name
		}
		e.ssh(name, "echo "+name+" > /work/mine-"+name)
	}
	// Each reaches the others by name, and sees only its own files.
	for _, name := range all {
		for _, other := range all {
			if other == name {
				continue
			}
			if out := e.ssh(name, "timeout 10 bash -c 'echo > /dev/tcp/"+other+".vm/22' && echo reached"); out != "reached" {
				t.Errorf("%s cannot reach %s.vm: %q", name, other, out)
			}
		}
		if out := e.ssh(name, "ls /work | grep ^mine- | tr '\\n' ' '"); strings.TrimSpace(out) != "mine-"+name {
			t.Errorf("%s's /work holds %q, want only its own file", name, out)
		}
	}

	t.Run("refusals", func(t *testing.T) {
		e := e.with(t)
		if _, errOut, code := e.banger("vm", "clone", "src", "c1"); code == 0 || !strings.Contains(errOut, "vm c1 already exists") {
			t.Errorf("clone to an existing name: exit %d, %s", code, errOut)
		}
		e.must("vm", "stop", "c2")
		if _, errOut, code := e.banger("vm", "clone", "c2", "c4"); code == 0 || !strings.Contains(errOut, "cannot clone vm c2: it is stopped") {
			t.Errorf("clone of a stopped vm: exit %d, %s", code, errOut)
		}
		if _, _, code := e.banger("vm", "show", "c4"); code == 0 {
			t.Error("a refused clone left vm c4")
		}
		if out, errOut, code := e.banger("system", "check"); code != 0 {
			t.Errorf("system check after the clones: exit %d\n%s%s", code, out, errOut)
		}
	})
	e.must(append([]string{"vm", "rm", "--force"}, all...)...)
	if out, errOut, code := e.banger("system", "check"); code != 0 {
		t.Errorf("system check after removing the clones: exit %d\n%s%s", code, out, errOut)
	}
}
