package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"banger/internal/api"
	"banger/internal/system"

	"golang.org/x/sys/unix"
)

// soakRounds is how many rounds TestFaultSoak runs: BANGER_SOAK_ROUNDS, or
// a bounded part for the ordinary test run (`make soak` runs 1,000).
func soakRounds() int {
	if n, err := strconv.Atoi(os.Getenv("BANGER_SOAK_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 30
}

// soakOps are the lifecycle commands a round picks from, for a VM name.
var soakOps = [][]string{
	{"vm", "create", "%s", "--no-start", "--memory", "256M", "--disk", "64M"},
	{"vm", "create", "%s", "--no-wait", "--memory", "256M", "--disk", "64M"},
	{"vm", "start", "%s", "--no-wait"},
	{"vm", "kill", "%s"},
	{"vm", "rm", "--force", "%s"},
	{"vm", "resize", "%s", "--disk", "128M"},
	{"vm", "restart", "%s", "--no-wait"},
	{"vm", "pause", "%s"},
	{"vm", "suspend", "%s"},
	{"vm", "clone", "%s", "%s-c"},
	{"vm", "rm", "--force", "%s-c"},
}

// TestFaultSoak runs random lifecycle commands on three VMs, with kill -9
// of the daemon, a VMM or the CLI at a random moment during or after each,
// and after every round checks that the next command works and that
// `banger system check` finds the host and the database in agreement
// (nothing leaked, nothing missing, nothing stuck in a transitional state)
// within the reconcile interval. The seed is printed; BANGER_SOAK_SEED
// replays a run.
func TestFaultSoak(t *testing.T) {
	e := newGuestEnv(t)
	e.vars = append(e.vars, "BANGER_STOP_TIMEOUT=2s")
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("BANGER_SOAK_SEED"), 10, 64); err == nil {
		seed = s
	}
	rounds := soakRounds()
	t.Logf("soak: %d rounds, seed %d (replay with BANGER_SOAK_SEED=%d)", rounds, seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	e.must("image", "bootstrap", "base")
	e.must("config", "show") // starts the daemon

	// A VM no round names: no fault anywhere may change a byte of its disks.
	e.must("vm", "create", "keeper", "--no-start", "--memory", "256M", "--disk", "64M")
	keeper := e.vm("keeper")
	keeperSums := diskSums(t, keeper)

	names := []string{"sa", "sb", "sc"}
	kills := map[string]int{}
	var noticed, answered []time.Duration
	for round := 1; round <= rounds; round++ {
		name := names[rng.IntN(len(names))]
		op := soakOps[rng.IntN(len(soakOps))]
		args := make([]string, len(op))
		for i, a := range op {
			args[i] = strings.ReplaceAll(a, "%s", name)
		}
		victim := []string{"none", "daemon", "vmm", "cli"}[rng.IntN(4)]
		delay := time.Duration(rng.IntN(400)) * time.Millisecond
		what := fmt.Sprintf("round %d (seed %d): banger %s, kill %s after %s", round, seed, strings.Join(args, " "), victim, delay)

		cli := e.start(args...)
		time.Sleep(delay)
		var vmmKilled time.Time
		var vmmVM string
		var vmmPID int
		switch victim {
		case "daemon":
			if st, err := e.client().Status(context.Background()); err == nil {
				if system.Signal(st.PID, 0, 9) == nil {
					kills[victim]++
				}
			}
		case "vmm":
			if vms, err := e.client().VMs(context.Background(), false); err == nil {
				for _, v := range vms {
					if v.PID > 0 && v.State == "running" {
						tree := system.Tree(v.PID)
						for _, p := range tree {
							_ = system.Signal(p, 0, 9)
						}
						if len(tree) == 0 {
							continue // gone already
						}
						kills[victim]++
						vmmKilled, vmmVM, vmmPID = time.Now(), v.Name, v.PID
						break
					}
				}
			}
		case "cli":
			if cli.Process.Signal(os.Kill) == nil {
				kills[victim]++
			}
		}
		done := make(chan struct{})
		go func() { _ = cli.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			_ = cli.Process.Kill()
			t.Fatalf("%s: the command did not end within 2 minutes", what)
		}

		// The next command works, a killed daemon restarted by it.
		start := time.Now()
		if out, errOut, code := e.banger("vm", "list", "-o", "json"); code != 0 {
			t.Fatalf("%s: the next command failed: exit %d\n%s%s\n%s", what, code, out, errOut, e.daemonLogTail())
		}
		if victim == "daemon" {
			answered = append(answered, time.Since(start))
		}
		if !vmmKilled.IsZero() {
			noticed = append(noticed, e.waitNotStarted(vmmVM, vmmPID, vmmKilled))
		}
		settleStart := time.Now()
		e.settle(t, what)
		t.Logf("%s: settled in %s", what, time.Since(settleStart).Round(time.Millisecond))
		if got := diskSums(t, keeper); got != keeperSums {
			t.Fatalf("%s: the disks of vm keeper, which no round touched, changed", what)
		}
	}
	// An operation whose CLI a round killed may still run in the daemon
	// (a suspend waiting on its guest): rm --force waits it out.
	e.must("vm", "rm", "--all", "--force")
	e.settle(t, "after removing every vm")
	slices.Sort(noticed)
	slices.Sort(answered)
	fmt.Printf("soak: %d rounds, seed %d, kills by victim: daemon %d, vmm %d, cli %d; leaks 0, stuck states 0\n",
		rounds, seed, kills["daemon"], kills["vmm"], kills["cli"])
	fmt.Printf("soak: dead VMM noticed p50 %s p99 %s over %d (target <= 2 s); next command after a daemon kill p50 %s p99 %s over %d (daemon start-up included)\n",
		pct(noticed, 50), pct(noticed, 99), len(noticed), pct(answered, 50), pct(answered, 99), len(answered))
}

// start runs the CLI without waiting for it.
func (e *env) start(args ...string) *exec.Cmd {
	e.t.Helper()
	argv := append([]string{"ip", "netns", "exec", e.netns, filepath.Join(e.bin, "banger")}, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(cleanEnv(), e.vars...)
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	return cmd
}

// waitNotStarted returns how long after killed the daemon stopped showing
// the VM as running on the killed VMM (pid): stopped, gone, or running on
// a new VMM that an operation in progress (restart, start) started since.
func (e *env) waitNotStarted(name string, pid int, killed time.Time) time.Duration {
	for time.Since(killed) < 30*time.Second {
		v, err := e.client().VM(context.Background(), name)
		if err != nil || v.State != "running" || v.PID != pid {
			return time.Since(killed)
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Errorf("vm %s still running on its killed VMM (pid %d) 30 s later", name, pid)
	return 30 * time.Second
}

// settle waits up to 10 s (reconcile runs every second) for system check
// to find nothing and no VM to sit in a transitional state.
func (e *env) settle(t *testing.T, what string) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		out, errOut, code := e.banger("system", "check", "-o", "json")
		var rep api.CheckReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			last = fmt.Sprintf("exit %d: %s%s", code, out, errOut)
			continue
		}
		vms, err := e.client().VMs(context.Background(), true)
		if err != nil {
			last = err.Error()
			continue
		}
		var stuck []string
		for _, v := range vms {
			if v.State == "creating" || v.State == "starting" || v.State == "stopping" || v.State == "removing" {
				stuck = append(stuck, v.Name+" "+v.State)
			}
		}
		if code == 0 && len(rep.Findings) == 0 && len(stuck) == 0 {
			return
		}
		last = fmt.Sprintf("system check exit %d: %+v; transitional: %v", code, rep.Findings, stuck)
	}
	t.Fatalf("%s: the host and the database disagree 10 s later: %s\ndaemon log:\n%s", what, last, e.daemonLogTail())
}

// pct is the p-th percentile of sorted durations.
func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := (len(d)*p + 99) / 100
	return d[max(i-1, 0)].Round(time.Millisecond)
}

// TestConcurrentCommands: 20 concurrent creates of one name, from 20 CLI
// processes, make exactly one VM, and each other gets a clear conflict;
// 50 concurrent CLI commands all answer; the host and the database agree
// afterwards.
func TestConcurrentCommands(t *testing.T) {
	e := newGuestEnv(t)
	e.must("image", "bootstrap", "base")
	type result struct {
		out, errOut string
		code        int
	}
	run := func(n int, args func(i int) []string) []result {
		res := make([]result, n)
		done := make(chan int, n)
		for i := 0; i < n; i++ {
			go func(i int) {
				r := &res[i]
				r.out, r.errOut, r.code = e.banger(args(i)...)
				done <- i
			}(i)
		}
		for i := 0; i < n; i++ {
			<-done
		}
		return res
	}
	creates := run(20, func(int) []string {
		return []string{"vm", "create", "one", "--no-start", "--memory", "256M", "--disk", "64M"}
	})
	won := 0
	for _, r := range creates {
		switch {
		case r.code == 0:
			won++
		case !strings.Contains(r.errOut, "one") || !(strings.Contains(r.errOut, "exists") || strings.Contains(r.errOut, "busy")):
			t.Errorf("a losing create: exit %d, the message does not say the name is taken:\n%s", r.code, r.errOut)
		}
	}
	if won != 1 {
		t.Errorf("%d of 20 concurrent creates of one name succeeded, want exactly 1", won)
	}
	cmds := [][]string{{"vm", "list"}, {"vm", "show", "one"}, {"daemon", "status"}, {"image", "list"}, {"system", "check"}}
	for i, r := range run(50, func(i int) []string { return cmds[i%len(cmds)] }) {
		if r.code != 0 {
			t.Errorf("banger %s (one of 50 at once): exit %d\n%s", strings.Join(cmds[i%len(cmds)], " "), r.code, r.errOut)
		}
	}
	e.must("vm", "rm", "one")
	e.settle(t, "after the concurrent commands")
}

// diskSums is the SHA-256 of a VM's disk files, one after the other: of
// their data regions and where each lies (the holes of a sparse disk are
// zeros, and reading them would make each round slow).
func diskSums(t *testing.T, v api.VM) string {
	t.Helper()
	h := sha256.New()
	for _, p := range []string{v.RootDisk, v.WorkDisk} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		st, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%s %d\n", filepath.Base(p), st.Size())
		for off := int64(0); off < st.Size(); {
			data, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
			if err != nil {
				break // no data after off
			}
			hole, err := unix.Seek(int(f.Fd()), data, unix.SEEK_HOLE)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(h, "%d-%d\n", data, hole)
			if _, err := io.Copy(h, io.NewSectionReader(f, data, hole-data)); err != nil {
				t.Fatal(err)
			}
			off = hole
		}
		f.Close()
	}
	return hex.EncodeToString(h.Sum(nil))
}
