package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// BenchmarkSuspendResume measures issue 16's targets on one real guest,
// side by side in each round: `vm start --wait` of a stopped VM (a cold
// boot to SSH ready), `vm pause` and `vm resume`, `vm suspend`, and
// `vm start --wait` of the suspended VM (restore to SSH ready). Every
// figure is a whole CLI run against the running daemon. Targets: start of
// a suspended VM <= 1 s, pause and resume <= 50 ms each.
func BenchmarkSuspendResume(b *testing.B) {
	benchGate(b)
	e := newGuestEnv(b)
	e.must("image", "bootstrap", "base")
	rounds := 5
	if s := os.Getenv("BANGER_BENCH_ROUNDS"); s != "" {
		fmt.Sscan(s, &rounds)
	}
	e.must("vm", "create", "s", "--cpus", "1", "--memory", "512M", "--disk", "64M", "--wait")
	logPath := filepath.Join(e.home, "state", "banger", "bangerd.log")
	timed := func(args ...string) time.Duration {
		start := time.Now()
		e.must(args...)
		return time.Since(start)
	}
	// A warm template of the same shape, for the fast creates.
	e.must("image", "warm", "base", "--cpus", "1", "--memory", "512M", "--disk", "64M")
	var cold, pause, resume, suspend, warm, restarted, clone, fast []time.Duration
	var saved []int64
	restoreSteps, restartSteps := map[string][]time.Duration{}, map[string][]time.Duration{}
	cloneSteps, fastSteps := map[string][]time.Duration{}, map[string][]time.Duration{}
	for i := 0; i < rounds; i++ {
		e.must("vm", "stop", "s")
		cold = append(cold, timed("vm", "start", "s", "--wait"))
		// Let the guest settle after its boot, as a VM in use would be.
		e.must("vm", "ssh", "s", "--", "true")
		pause = append(pause, timed("vm", "pause", "s"))
		resume = append(resume, timed("vm", "resume", "s"))
		suspend = append(suspend, timed("vm", "suspend", "s"))
		saved = append(saved, e.vm("s").SavedBytes)
		mark := logSize(logPath)
		warm = append(warm, timed("vm", "start", "s", "--wait"))
		for st, d := range opSteps(b, logPath, mark, "vm start") {
			restoreSteps[st] = append(restoreSteps[st], d)
		}
		e.must("vm", "ssh", "s", "--", "true")
		// The same after a daemon restart, which loses the daemon's
		// parked SSH connection: the start makes a new one.
		e.must("vm", "suspend", "s")
		killDaemon(b, e.status().PID)
		e.must("vm", "list") // the new daemon, reconciled
		mark = logSize(logPath)
		restarted = append(restarted, timed("vm", "start", "s", "--wait"))
		for st, d := range opSteps(b, logPath, mark, "vm start") {
			restartSteps[st] = append(restartSteps[st], d)
		}
		e.must("vm", "ssh", "s", "--", "true")
		// A clone of the running VM, to SSH ready at its own address.
		mark = logSize(logPath)
		name := fmt.Sprintf("c%d", i)
		clone = append(clone, timed("vm", "clone", "s", name))
		for st, d := range opSteps(b, logPath, mark, "vm clone") {
			cloneSteps[st] = append(cloneSteps[st], d)
		}
		e.must("vm", "rm", "-f", name)
		// A create of the template's shape: restored from it.
		name = fmt.Sprintf("f%d", i)
		mark = logSize(logPath)
		fast = append(fast, timed("vm", "create", name, "--cpus", "1", "--memory", "512M", "--disk", "64M", "--wait"))
		for st, d := range opSteps(b, logPath, mark, "vm clone") {
			fastSteps[st] = append(fastSteps[st], d)
		}
		e.must("vm", "rm", "-f", name)
	}
	mc, mw := median(cold), median(warm)
	fmt.Printf("vm start --wait of a suspended vm (restore to SSH ready): %s vs cold boot %s (medians of %d, same run): ratio %.3f (target <= 1 s)\n",
		mw.Round(time.Millisecond), mc.Round(time.Millisecond), rounds, float64(mw)/float64(mc))
	fmt.Printf("vm pause: %s, vm resume: %s (medians of %d; target <= 50 ms each)\n",
		median(pause).Round(time.Millisecond), median(resume).Round(time.Millisecond), rounds)
	sort.Slice(saved, func(i, j int) bool { return saved[i] < saved[j] })
	fmt.Printf("vm suspend: %s (median of %d), saved state on disk %.0f MiB (median) for a 512 MiB guest\n",
		median(suspend).Round(time.Millisecond), rounds, float64(saved[len(saved)/2])/(1<<20))
	fmt.Printf("  daemon step medians of the restoring start: %s\n", namedStepMedians(restoreSteps, "starting", "network", "tap", "restore", "discard", "resume", "forwards", "ssh", "clock"))
	mr := median(restarted)
	fmt.Printf("vm start --wait of a suspended vm after a daemon restart (no parked connection): %s vs cold boot %s: ratio %.3f\n",
		mr.Round(time.Millisecond), mc.Round(time.Millisecond), float64(mr)/float64(mc))
	fmt.Printf("  daemon step medians of that start: %s\n", namedStepMedians(restartSteps, "starting", "network", "tap", "restore", "discard", "resume", "forwards", "ssh", "clock"))
	mk := median(clone)
	fmt.Printf("vm clone of the running vm (to SSH ready at the clone's address): %s vs cold boot %s (medians of %d, same run): ratio %.3f\n",
		mk.Round(time.Millisecond), mc.Round(time.Millisecond), rounds, float64(mk)/float64(mc))
	fmt.Printf("  daemon step medians of the clone: %s\n", namedStepMedians(cloneSteps, "record", "dirs", "pause", "snapshot", "disks", "hostkey", "starting", "network", "tap", "restore", "resume", "identity", "ssh", "clock"))
	mf := median(fast)
	fmt.Printf("vm create --wait from a warm template (to SSH ready at its own address): %s vs cold boot %s (medians of %d, same run): ratio %.3f (target <= 1.5 s, <= 0.15)\n",
		mf.Round(time.Millisecond), mc.Round(time.Millisecond), rounds, float64(mf)/float64(mc))
	fmt.Printf("  daemon step medians of the fast create: %s\n", namedStepMedians(fastSteps, "record", "dirs", "disks", "hostkey", "network", "tap", "restore", "resume", "identity", "ssh", "running"))
	fmt.Printf("  cold:    %v\n  restore: %v\n  restart: %v\n  pause:   %v\n  resume:  %v\n  clone:   %v\n  fast:    %v\n", cold, warm, restarted, pause, resume, clone, fast)
	b.ReportMetric(float64(mw)/float64(mc), "ratio")
	e.must("vm", "rm", "-f", "s")
}

func logSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// namedStepMedians renders the median of each named step that was logged.
func namedStepMedians(steps map[string][]time.Duration, names ...string) string {
	var parts []string
	for _, st := range names {
		if d, ok := steps[st]; ok {
			parts = append(parts, fmt.Sprintf("%s %.1fms", st, float64(median(d).Microseconds())/1000))
		}
	}
	return strings.Join(parts, ", ")
}

// opSteps reads the step durations of operation op the daemon logged
// after offset.
func opSteps(b *testing.B, logPath string, offset int64, op string) map[string]time.Duration {
	data, err := os.ReadFile(logPath)
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]time.Duration{}
	for _, line := range strings.Split(string(data[min(offset, int64(len(data))):]), "\n") {
		var rec struct {
			Msg  string `json:"msg"`
			Step string `json:"step"`
			Op   string `json:"op"`
			US   int64  `json:"duration_us"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "operation step" && rec.Op == op {
			out[rec.Step] = time.Duration(rec.US) * time.Microsecond
		}
	}
	return out
}
