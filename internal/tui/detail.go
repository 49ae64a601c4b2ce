package tui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"banger/internal/api"
	"banger/internal/vm"
)

// followDelay lets the selection settle before a console follow starts, so
// that scrolling through many VMs does not open a stream for each.
const followDelay = 100 * time.Millisecond

// logTail is the followed console log of the selected VM.
type logTail struct {
	vm      string
	seq     int
	lines   []string
	partial string
	note    string
	cancel  context.CancelFunc
	max     int
}

type (
	logStartMsg struct {
		seq  int
		name string
	}
	logMsg struct {
		seq   int
		data  string
		err   error
		ended bool
	}
)

// followSelected stops following the previous VM's console and schedules
// following the selected one's.
func (m *Model) followSelected() tea.Cmd {
	if m.logs.cancel != nil {
		m.logs.cancel()
		m.logs.cancel = nil
	}
	m.logs = logTail{seq: m.logs.seq + 1, vm: m.selected, max: m.cfg.LogLines}
	if m.selected == "" {
		return nil
	}
	seq, name := m.logs.seq, m.selected
	return tea.Tick(followDelay, func(time.Time) tea.Msg { return logStartMsg{seq: seq, name: name} })
}

func (m *Model) startLogs(msg logStartMsg) tea.Cmd {
	if msg.seq != m.logs.seq {
		return nil
	}
	ctx, cancel := context.WithCancel(m.ctx)
	m.logs.cancel = cancel
	c := m.cfg.Client
	go func() {
		w := writerFunc(func(p []byte) { m.send(logMsg{seq: msg.seq, data: string(p)}) })
		err := c.VMLogsTail(ctx, msg.name, "console", true, m.cfg.LogLines, w)
		if ctx.Err() == nil {
			m.send(logMsg{seq: msg.seq, err: err, ended: true})
		}
	}()
	return nil
}

type writerFunc func([]byte)

func (f writerFunc) Write(p []byte) (int, error) {
	f(p)
	return len(p), nil
}

// apply adds console output to the tail, keeping the last max lines.
func (t *logTail) apply(msg logMsg) {
	if msg.seq != t.seq {
		return
	}
	if msg.ended {
		switch {
		case errors.Is(msg.err, api.ErrNotFound):
			t.note = "no console output yet"
		case msg.err != nil:
			t.note = "console: " + strings.SplitN(msg.err.Error(), "\n", 2)[0]
		}
		return
	}
	parts := strings.Split(t.partial+msg.data, "\n")
	t.partial = parts[len(parts)-1]
	for _, l := range parts[:len(parts)-1] {
		t.lines = append(t.lines, sanitize(lastCR(l)))
	}
	if n := len(t.lines) - t.max; n > 0 && t.max > 0 {
		t.lines = append(t.lines[:0:0], t.lines[n:]...)
	}
}

// last returns up to n of the latest console lines.
func (t *logTail) last(n int) []string {
	lines := t.lines
	if t.partial != "" {
		lines = append(lines[:len(lines):len(lines)], sanitize(t.partial))
	}
	if n <= 0 {
		return nil
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// rule draws a titled horizontal line.
func (m *Model) rule(title string, width int) string {
	t := "─ " + title + " "
	return m.st.dim.Render(clip(t+strings.Repeat("─", max(width-len([]rune(t)), 0)), width))
}

// vmFacts are the detail lines of a VM: config, disks, logs.
func (m *Model) vmFacts(v api.VM, full bool, width int) []string {
	l := m.st.label.Render
	var out []string
	line := func(parts ...string) {
		var kept []string
		for _, p := range parts {
			if p != "" {
				kept = append(kept, p)
			}
		}
		out = append(out, clip(strings.Join(kept, "  "), width))
	}
	kv := func(k, v string) string {
		if v == "" {
			return ""
		}
		return l(k) + " " + v
	}
	img := v.Image
	if v.StaleImage && full {
		img += " (stale: the image was rebuilt since this VM was made)"
	} else if v.StaleImage {
		img += " (stale)"
	}
	pid, up := "", ""
	if v.PID > 0 {
		pid = fmt.Sprint(v.PID)
	}
	if u := uptime(v, m.cfg.Now()); u != "-" {
		up = u
	}
	if full {
		line(kv("state", m.st.state(v.State).Render(v.State)), kv("pid", pid), kv("up", up))
		line(kv("id", v.ID))
		line(kv("image", img))
		line(kv("vCPUs", fmt.Sprint(v.CPUs)), kv("memory", size(int64(v.MemoryMiB)*vm.MiB)), kv("work disk", size(v.DiskBytes)))
		line(kv("address", v.IP), kv("dns", v.DNSName))
		if len(v.Forwards) > 0 {
			line(kv("forwards", shortForwards(v.Forwards)))
		}
		line(kv("mac", v.MAC), kv("tap", v.TAP))
		line(kv("created", v.CreatedAt.UTC().Format("2006-01-02 15:04:05 UTC")))
	} else {
		line(kv("image", img), kv("vCPUs", fmt.Sprint(v.CPUs)), kv("mem", size(int64(v.MemoryMiB)*vm.MiB)), kv("pid", pid), kv("up", up))
		line(kv("address", v.IP), kv("dns", v.DNSName), kv("tap", v.TAP))
		if len(v.Forwards) > 0 {
			line(kv("forwards", shortForwards(v.Forwards)))
		}
	}
	if v.Reason != "" {
		line(m.st.err.Render("reason ") + strings.SplitN(v.Reason, "\n", 2)[0])
	}
	path := func(p string, rest int) string { return clipLeft(p, max(width-rest, 10)) }
	rootUse := size(v.RootUsed) + " used"
	workUse := size(v.WorkUsed) + " used of " + size(v.DiskBytes)
	line(l("root   "), path(v.RootDisk, 11+len(rootUse)), rootUse)
	line(l("work   "), path(v.WorkDisk, 11+len(workUse)), workUse)
	if v.SavedMemory != "" {
		saved := size(v.SavedBytes) + " saved"
		line(l("memory "), path(v.SavedMemory, 11+len(saved)), saved)
	}
	line(l("console"), path(v.ConsoleLog, 9))
	line(l("vmm log"), path(v.VMMLog, 9))
	return out
}

// detailView renders the selected VM's pane in height lines.
func (m *Model) detailView(width, height int, full bool) []string {
	v, ok := m.current()
	if !ok || height <= 0 {
		return nil
	}
	out := []string{m.rule(v.Name+" · "+v.State, width)}
	tailTitle := "console (following)"
	if m.logs.note != "" {
		tailTitle = "console: " + m.logs.note
	}
	if !full && width >= 100 {
		// Facts on the left, console on the right.
		left := width * 11 / 20
		facts := m.vmFacts(v, false, left-1)
		tail := m.logs.last(height - 2)
		right := width - left - 2
		for i := 0; i < height-1; i++ {
			f := ""
			if i < len(facts) {
				f = facts[i]
			}
			r := ""
			switch {
			case i == 0:
				r = m.st.dim.Render(clip(tailTitle, right))
			case i-1 < len(tail):
				r = clip(tail[i-1], right)
			}
			out = append(out, fit(f, left)+m.st.dim.Render("│ ")+r)
		}
		return out
	}
	facts := m.vmFacts(v, full, width)
	out = append(out, facts...)
	rest := height - len(out)
	if rest >= 2 {
		out = append(out, m.rule(tailTitle, width))
		for _, l := range m.logs.last(rest - 1) {
			out = append(out, clip(l, width))
		}
	}
	for len(out) < height {
		out = append(out, "")
	}
	return out[:height]
}
