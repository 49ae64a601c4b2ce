package cli

import (
	"fmt"
	"io"
	"strings"

	"banger/internal/api"
)

// seconds renders milliseconds as seconds with two decimals.
func seconds(ms int64) string { return fmt.Sprintf("%.2fs", float64(ms)/1000) }

// bootSummary is the one-line form of a boot timeline for `vm show`:
// "4.21s to SSH: vmm 0.45s, kernel 1.13s, …".
func bootSummary(b *api.BootTimeline) string {
	if b == nil {
		return ""
	}
	var parts []string
	for _, p := range b.Phases {
		parts = append(parts, p.Name+" "+seconds(p.DurationMS))
	}
	head := "SSH not answered yet"
	if b.TotalMS > 0 {
		head = seconds(b.TotalMS) + " to SSH"
	}
	if len(parts) == 0 {
		return head + " (no boot marks on the console)"
	}
	return head + ": " + strings.Join(parts, ", ")
}

// writeBootTable prints a boot timeline, one phase a line.
func writeBootTable(w io.Writer, name string, b *api.BootTimeline) error {
	if b == nil {
		_, err := fmt.Fprintf(w, "vm %s has not booted since banger began recording boots\n", name)
		return err
	}
	origin := map[string]string{"vmm": "VMM start", "kernel": "kernel start"}[b.Origin]
	t := newTable(w, "PHASE", "FROM", "TO", "START", "TOOK", "CLOCK")
	for _, p := range b.Phases {
		t.row(p.Name, p.From, p.To, seconds(p.StartMS), seconds(p.DurationMS), p.Clock)
	}
	if b.TotalMS > 0 {
		t.row("total", "VMM start", "SSH answered", "", seconds(b.TotalMS), "host")
	}
	if err := t.flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "boot of %s, VMM started %s; START counts from the %s\n", name, b.VMMStartedAt.Local().Format("2006-01-02 15:04:05.000"), dash(origin))
	return err
}
