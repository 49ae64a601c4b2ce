package tui

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"banger/internal/api"
	"banger/internal/daemon/daemontest"
	"banger/internal/vm"
)

// benchDaemon starts a daemon with fake layers holding n VMs named
// vm-000…, every other one running.
func benchDaemon(b *testing.B, n int) *daemontest.Instance {
	b.Helper()
	inst := daemontest.Start(b, nil)
	inst.AddImage(b, "base")
	for i := range n {
		req := api.CreateVMRequest{Name: fmt.Sprintf("vm-%03d", i), Image: "base", CPUs: 1, MemoryMiB: 256, DiskBytes: vm.GiB, NoStart: i%2 == 1}
		if _, _, err := inst.Client.CreateVM(context.Background(), req, nil); err != nil {
			b.Fatal(err)
		}
	}
	return inst
}

// screenWatch is the program's output; it signals when a write matches
// the armed pattern.
type screenWatch struct {
	mu   sync.Mutex
	re   *regexp.Regexp
	seen chan time.Time
}

func newScreenWatch() *screenWatch { return &screenWatch{seen: make(chan time.Time, 1)} }

func (w *screenWatch) arm(re *regexp.Regexp) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.re = re
	select {
	case <-w.seen:
	default:
	}
}

func (w *screenWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.re != nil && w.re.Match(p) {
		w.re = nil
		w.seen <- time.Now()
	}
	return len(p), nil
}

func (w *screenWatch) wait(b *testing.B) time.Time {
	b.Helper()
	select {
	case at := <-w.seen:
		return at
	case <-time.After(10 * time.Second):
		b.Fatal("the screen never showed the change")
		return time.Time{}
	}
}

// startProgram runs the TUI on a 120×40 screen writing to w.
func startProgram(client Client, w *screenWatch) (*tea.Program, chan error) {
	m := New(context.Background(), Config{Client: client, Refresh: -1})
	p := tea.NewProgram(m, tea.WithInput(nil), tea.WithOutput(w), tea.WithoutSignals())
	done := make(chan error, 1)
	go func() {
		_, err := p.Run()
		m.Close()
		done <- err
	}()
	go p.Send(tea.WindowSizeMsg{Width: 120, Height: 40})
	return p, done
}

func reportMedian(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	med := d[len(d)/2]
	if len(d)%2 == 0 {
		med = (d[len(d)/2-1] + d[len(d)/2]) / 2
	}
	b.ReportMetric(float64(med.Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(d[len(d)-1].Microseconds())/1000, "max-ms")
}

// BenchmarkFirstFrame measures the time from starting the TUI (a new
// client, a new program) to the first frame that shows the table of 200
// VMs. Target: median ≤ 150 ms.
func BenchmarkFirstFrame(b *testing.B) {
	inst := benchDaemon(b, 200)
	var times []time.Duration
	b.ResetTimer()
	for range b.N {
		w := newScreenWatch()
		w.arm(regexp.MustCompile(`VMs 200[\s\S]*vm-000`))
		start := time.Now()
		p, done := startProgram(api.NewClient(inst.Paths.Socket()), w)
		times = append(times, w.wait(b).Sub(start))
		p.Quit()
		<-done
	}
	b.StopTimer()
	reportMedian(b, times)
}

// BenchmarkStateChange measures, with 200 VMs on screen, the time from
// asking the daemon to kill (or start) a VM until the TUI's output shows
// its new state. The daemon records the change inside that request, so
// this is an upper bound of "visible after the daemon records it".
// Target: median ≤ 250 ms.
func BenchmarkStateChange(b *testing.B) {
	inst := benchDaemon(b, 200)
	w := newScreenWatch()
	w.arm(regexp.MustCompile(`VMs 200[\s\S]*vm-000`))
	p, done := startProgram(api.NewClient(inst.Paths.Socket()), w)
	w.wait(b)
	ctx := context.Background()
	var times []time.Duration
	b.ResetTimer()
	for i := range b.N {
		var err error
		start := time.Now()
		if i%2 == 0 {
			w.arm(regexp.MustCompile(`vm-000\s+stopped`))
			_, err = inst.Client.KillVM(ctx, "vm-000")
		} else {
			w.arm(regexp.MustCompile(`vm-000\s+running`))
			_, err = inst.Client.StartVM(ctx, "vm-000", false, nil)
		}
		if err != nil {
			b.Fatal(err)
		}
		times = append(times, w.wait(b).Sub(start))
	}
	b.StopTimer()
	p.Quit()
	<-done
	reportMedian(b, times)
}
