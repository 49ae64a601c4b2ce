package daemon

import (
	"time"

	"banger/internal/system"
)

// Stats samples a VMM process's CPU time and memory.
type Stats interface {
	// Sample returns cumulative CPU time and resident memory of pid.
	Sample(pid int) (cpu time.Duration, rss int64, err error)
}

type procStats struct{}

// Sample sums the VMM and its descendants: banger-vmm-qemu does its work
// in a QEMU child.
func (procStats) Sample(pid int) (time.Duration, int64, error) {
	if _, err := system.ReadProcStat(pid); err != nil {
		return 0, 0, err
	}
	var ticks uint64
	var rss int64
	for _, p := range system.Tree(pid) {
		st, err := system.ReadProcStat(p)
		if err != nil {
			continue
		}
		ticks += st.UTime + st.STime
		if r, err := system.RSSBytes(p); err == nil {
			rss += r
		} else {
			rss += st.RSSPages * 4096
		}
	}
	return time.Duration(ticks) * time.Second / system.ClockTicks, rss, nil
}

type cpuSample struct {
	at      time.Time
	cpu     time.Duration
	rss     int64
	percent float64
}

// sample records a new measurement for pid and computes CPU% since the
// previous one.
func (d *Daemon) sample(pid int) {
	cpu, rss, err := d.deps.Stats.Sample(pid)
	if err != nil {
		return
	}
	now := time.Now()
	d.statsMu.Lock()
	defer d.statsMu.Unlock()
	s := cpuSample{at: now, cpu: cpu, rss: rss}
	if prev, ok := d.samples[pid]; ok && now.After(prev.at) {
		s.percent = 100 * float64(cpu-prev.cpu) / float64(now.Sub(prev.at))
		if s.percent < 0 {
			s.percent = 0
		}
	}
	d.samples[pid] = s
}

func (d *Daemon) stats(pid int) (float64, int64) {
	d.statsMu.Lock()
	defer d.statsMu.Unlock()
	s, ok := d.samples[pid]
	if !ok {
		return 0, 0
	}
	return s.percent, s.rss
}

func (d *Daemon) forgetStats(pid int) {
	d.statsMu.Lock()
	defer d.statsMu.Unlock()
	delete(d.samples, pid)
}
