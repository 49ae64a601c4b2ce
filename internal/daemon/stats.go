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

func (procStats) Sample(pid int) (time.Duration, int64, error) {
	st, err := system.ReadProcStat(pid)
	if err != nil {
		return 0, 0, err
	}
	cpu := time.Duration(st.UTime+st.STime) * time.Second / system.ClockTicks
	rss, err := system.RSSBytes(pid)
	if err != nil {
		rss = st.RSSPages * 4096
	}
	return cpu, rss, nil
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
