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
	cold, coldRAM := pssTree(b, e.vm("cold").PID)
	var sum, sumRAM int64
	for _, name := range fast {
		t, r := pssTree(b, e.vm(name).PID)
		sum, sumRAM = sum+t, sumRAM+r
	}
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	fmt.Printf("PSS of 5 idle VMs from one warm template: %.1f MiB in sum vs one cold-booted VM %.1f MiB: ratio %.2f (target <= 2)\n",
		mib(sum), mib(cold), float64(sum)/float64(cold))
	fmt.Printf("  of which guest memory (the VMM's RAM memfd): %.1f MiB in sum vs %.1f MiB; the rest (QEMU with its TCG translation buffer, banger-vmm-qemu): %.1f MiB in sum, %.1f MiB per VM, vs %.1f MiB\n",
		mib(sumRAM), mib(coldRAM), mib(sum-sumRAM), mib(sum-sumRAM)/5, mib(cold-coldRAM))
	b.ReportMetric(float64(sum)/float64(cold), "ratio")
	e.must(append([]string{"vm", "rm", "-f", "cold"}, fast...)...)
}

// pssTree sums the proportional set size of pid and its descendants
// (/proc/PID/smaps), in bytes, and the part of it that is guest memory
// (banger-vmm-qemu's RAM memfd, mapped by QEMU).
func pssTree(b *testing.B, pid int) (total, ram int64) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "smaps"))
	if err != nil {
		b.Fatal(err)
	}
	guestRAM := false
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			guestRAM = strings.Contains(line, "banger-vmm-qemu-ram")
		case len(f) >= 2 && f[0] == "Pss:":
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			total += kb << 10
			if guestRAM {
				ram += kb << 10
			}
		}
	}
	tasks, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "children"))
	for _, t := range tasks {
		kids, _ := os.ReadFile(t)
		for _, k := range strings.Fields(string(kids)) {
			if c, err := strconv.Atoi(k); err == nil {
				t, r := pssTree(b, c)
				total, ram = total+t, ram+r
			}
		}
	}
	return total, ram
}
