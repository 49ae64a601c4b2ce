package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"

	"banger/internal/api"
	"banger/internal/vm"
)

// size renders bytes the way the CLI's size flags read them (8G, 1.5G).
func size(b int64) string {
	if b <= 0 {
		return "-"
	}
	return vm.FormatSize(b)
}

// uptime renders how long a running VM has been up, in at most two units.
func uptime(v api.VM, now time.Time) string {
	if v.State != string(vm.Running) || v.StartedAt.IsZero() {
		return "-"
	}
	d := now.Sub(v.StartedAt)
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd%02dh", int(d.Hours()/24), int(d.Hours())%24)
	}
}

func cpuPercent(v api.VM) string {
	if v.State != string(vm.Running) {
		return "-"
	}
	return fmt.Sprintf("%.1f", v.CPUPercent)
}

func rss(v api.VM) string {
	if (v.State != string(vm.Running) && v.State != string(vm.Paused)) || v.RSSBytes == 0 {
		return "-"
	}
	return vm.FormatSize(v.RSSBytes)
}

// shortForwards renders a VM's forwards compactly, as `banger vm list`
// does: the default address and protocol are left out
// ("8080:80, 5353:53/udp"); none gives "".
func shortForwards(specs []string) string {
	short := make([]string, len(specs))
	for i, s := range specs {
		s = strings.TrimPrefix(s, "127.0.0.1:")
		short[i] = strings.TrimSuffix(s, "/tcp")
	}
	return strings.Join(short, ", ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// fit pads or truncates s (which may hold escape codes) to exactly w cells.
func fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	n := ansi.StringWidth(s)
	if n > w {
		return ansi.Truncate(s, w, "…")
	}
	return s + strings.Repeat(" ", w-n)
}

// clip truncates s to at most w cells without padding.
func clip(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if ansi.StringWidth(s) > w {
		return ansi.Truncate(s, w, "…")
	}
	return s
}

// clipLeft keeps the end of s, so that file names in long paths stay
// visible.
func clipLeft(s string, w int) string {
	r := []rune(s)
	if len(r) <= w || w <= 1 {
		return clip(s, w)
	}
	return "…" + string(r[len(r)-w+1:])
}

// errorParts splits an error into the message, hint and log paths the
// status line shows.
func errorParts(err error) (msg, hint string, logs []string) {
	ae := api.AsError(err)
	msg = strings.TrimSpace(ae.Message)
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return msg, ae.Hint, ae.Logs
}

// lastCR keeps what follows a line's last carriage return, as a terminal
// shows a progress line that redraws itself.
func lastCR(l string) string {
	if i := strings.LastIndexByte(strings.TrimRight(l, "\r"), '\r'); i >= 0 {
		return l[i+1:]
	}
	return l
}

// sanitize drops control characters from console output, keeping it from
// moving the cursor or changing colors inside the frame.
func sanitize(s string) string {
	s = ansi.Strip(s)
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t':
			return ' '
		case r < 0x20 || r == 0x7f:
			return -1
		}
		return r
	}, s)
}
