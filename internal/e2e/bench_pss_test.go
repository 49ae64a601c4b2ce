package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkTemplatePSS is issue 16's memory target: five idle VMs made
// from one warm template, in sum of PSS (their VMM and QEMU processes),
// against one cold-booted VM of the same shape.
func BenchmarkTemplatePSS(b *testing.B) {
	benchGate(b)
	e := newGuestEnv(b)
	e.must("image", "bootstrap", "base")
	shape := []string{"--cpus", "1", "--memory", "512M", "--disk", "64M"}
	e.must(append([]string{"vm", "create", "cold", "--wait"}, shape...)...)
	e.must(append([]string{"image", "warm", "base"}, shape...)...)
	var fast []string
	for i := 0; i < 5; i++ {
		name := fmt.Sprintf("f%d", i)
		e.must(append([]string{"vm", "create", name, "--wait"}, shape...)...)
		fast = append(fast, name)
	}
	time.Sleep(10 * time.Second) // idle: let the guests settle
	cold := pssTree(b, e.vm("cold").PID)
	var sum int64
	for _, name := range fast {
		sum += pssTree(b, e.vm(name).PID)
	}
	fmt.Printf("PSS of 5 idle VMs from one warm template: %.1f MiB in sum vs one cold-booted VM %.1f MiB: ratio %.2f (target <= 2)\n",
		float64(sum)/(1<<20), float64(cold)/(1<<20), float64(sum)/float64(cold))
	b.ReportMetric(float64(sum)/float64(cold), "ratio")
	e.must(append([]string{"vm", "rm", "-f", "cold"}, fast...)...)
}

// pssTree sums the proportional set size of pid and its descendants
// (/proc/PID/smaps_rollup), in bytes.
func pssTree(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "smaps_rollup"))
	if err != nil {
		b.Fatal(err)
	}
	var total int64
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "Pss:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			total += kb << 10
		}
	}
	tasks, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "children"))
	for _, t := range tasks {
		kids, _ := os.ReadFile(t)
		for _, k := range strings.Fields(string(kids)) {
			if c, err := strconv.Atoi(k); err == nil {
				total += pssTree(b, c)
			}
		}
	}
	return total
}
