package tui

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"banger/internal/api"
	"banger/internal/vm"
)

// column is one column of the VM table.
type column struct {
	title string
	// min is the narrowest width; flexible columns shrink to it before any
	// column is dropped.
	min, max int
	right    bool
	// drop orders which columns go first on narrow terminals (higher goes
	// first); zero never goes.
	drop int
	// spare columns show only when a row has a value (not "-") and in
	// the room left once every other column has its width; they never
	// take width from the others.
	spare bool
	cell  func(v api.VM, now time.Time) string
	order func(a, b api.VM) int
}

var vmColumns = []column{
	{title: "NAME", min: 8, max: 24, cell: func(v api.VM, _ time.Time) string { return v.Name },
		order: func(a, b api.VM) int { return cmp.Compare(a.Name, b.Name) }},
	{title: "STATE", min: 8, max: 9, cell: func(v api.VM, _ time.Time) string { return v.State },
		order: func(a, b api.VM) int { return cmp.Compare(stateRank(a.State), stateRank(b.State)) }},
	{title: "ADDRESS", min: 10, max: 15, cell: func(v api.VM, _ time.Time) string { return dash(v.IP) },
		order: func(a, b api.VM) int { return compareIP(a.IP, b.IP) }},
	{title: "DNS", min: 8, max: 28, drop: 3, cell: func(v api.VM, _ time.Time) string { return v.DNSName },
		order: func(a, b api.VM) int { return cmp.Compare(a.DNSName, b.DNSName) }},
	{title: "IMAGE", min: 5, max: 16, drop: 1, cell: func(v api.VM, _ time.Time) string { return imageCell(v) },
		order: func(a, b api.VM) int { return cmp.Compare(a.Image, b.Image) }},
	{title: "VCPU", min: 4, max: 4, right: true, cell: func(v api.VM, _ time.Time) string { return fmt.Sprint(v.CPUs) },
		order: func(a, b api.VM) int { return cmp.Compare(a.CPUs, b.CPUs) }},
	{title: "MEM", min: 5, max: 6, right: true, cell: func(v api.VM, _ time.Time) string { return size(int64(v.MemoryMiB) * vm.MiB) },
		order: func(a, b api.VM) int { return cmp.Compare(a.MemoryMiB, b.MemoryMiB) }},
	{title: "CPU%", min: 5, max: 6, right: true, cell: func(v api.VM, _ time.Time) string { return cpuPercent(v) },
		order: func(a, b api.VM) int { return cmp.Compare(liveCPU(a), liveCPU(b)) }},
	{title: "RSS", min: 5, max: 6, right: true, cell: func(v api.VM, _ time.Time) string { return rss(v) },
		order: func(a, b api.VM) int { return cmp.Compare(liveRSS(a), liveRSS(b)) }},
	{title: "UPTIME", min: 6, max: 7, right: true, drop: 2, cell: uptime,
		order: func(a, b api.VM) int { return compareStarted(a, b) }},
	{title: "FORWARDS", min: 8, max: 24, spare: true, cell: func(v api.VM, _ time.Time) string { return dash(shortForwards(v.Forwards)) },
		order: func(a, b api.VM) int {
			return cmp.Or(cmp.Compare(len(a.Forwards), len(b.Forwards)), slices.Compare(a.Forwards, b.Forwards))
		}},
}

func imageCell(v api.VM) string {
	if v.StaleImage {
		return v.Image + "*"
	}
	return v.Image
}

func stateRank(s string) int {
	switch vm.State(s) {
	case vm.Running:
		return 0
	case vm.Starting, vm.Stopping, vm.Creating:
		return 1
	case vm.Error:
		return 2
	case vm.Stopped:
		return 3
	}
	return 4
}

func liveCPU(v api.VM) float64 {
	if v.State != string(vm.Running) && v.State != string(vm.Paused) {
		return -1
	}
	return v.CPUPercent
}

func liveRSS(v api.VM) int64 {
	if v.State != string(vm.Running) && v.State != string(vm.Paused) {
		return -1
	}
	return v.RSSBytes
}

// compareStarted orders by uptime: longest up first ascending means
// earliest start; VMs that are not running sort last.
func compareStarted(a, b api.VM) int {
	au, bu := a.State == string(vm.Running) && !a.StartedAt.IsZero(), b.State == string(vm.Running) && !b.StartedAt.IsZero()
	switch {
	case au && bu:
		return b.StartedAt.Compare(a.StartedAt)
	case au:
		return -1
	case bu:
		return 1
	}
	return 0
}

func compareIP(a, b string) int {
	pa, pb := ipKey(a), ipKey(b)
	return cmp.Compare(pa, pb)
}

// ipKey makes dotted IPv4 addresses sort numerically; empty sorts last.
func ipKey(s string) string {
	if s == "" {
		return "~"
	}
	parts := strings.Split(s, ".")
	for i, p := range parts {
		parts[i] = fmt.Sprintf("%03s", p)
	}
	return strings.Join(parts, ".")
}

// matches reports whether v matches a filter: every word of it appears in
// the VM's name, state, address, DNS name or image.
func matches(v api.VM, filter string) bool {
	hay := strings.ToLower(strings.Join([]string{v.Name, v.State, v.IP, v.DNSName, v.Image}, " "))
	for _, w := range strings.Fields(strings.ToLower(filter)) {
		if !strings.Contains(hay, w) {
			return false
		}
	}
	return true
}

// visibleVMs filters and sorts the VMs for display; ties fall back to
// the name so that the order is stable.
func visibleVMs(all map[string]api.VM, filter string, col int, desc bool) []api.VM {
	out := make([]api.VM, 0, len(all))
	for _, v := range all {
		if matches(v, filter) {
			out = append(out, v)
		}
	}
	order := vmColumns[col].order
	slices.SortFunc(out, func(a, b api.VM) int {
		c := order(a, b)
		if desc {
			c = -c
		}
		if c == 0 {
			c = cmp.Compare(a.Name, b.Name)
		}
		return c
	})
	return out
}

// layout picks the columns and their widths for a terminal width: columns
// take the width of their widest cell (within min and max); when the row is
// too wide the optional columns shrink and then go, and only then do the
// essential ones shrink.
func layout(rows [][]string, width int) (cols []int, widths []int) {
	want := make([]int, len(vmColumns))
	for i, c := range vmColumns {
		w := len(c.title)
		for _, r := range rows {
			w = max(w, len([]rune(r[i])))
		}
		want[i] = min(max(w, c.min), c.max)
	}
	var spare []int
	for i, c := range vmColumns {
		if c.spare {
			spare = append(spare, i)
		} else {
			cols = append(cols, i)
		}
	}
	// One cell for the selection marker, one space between columns.
	total := func() int {
		t := 1
		for _, i := range cols {
			t += want[i] + 1
		}
		return t
	}
	for total() > width {
		over := total() - width
		// First shrink, then drop, the optional columns (highest drop
		// priority first); only then shrink the essential ones.
		best, prio := -1, 0
		for _, i := range cols {
			if c := vmColumns[i]; c.drop > prio && want[i] > c.min {
				best, prio = i, c.drop
			}
		}
		if best >= 0 {
			want[best] -= min(want[best]-vmColumns[best].min, over)
			continue
		}
		drop := -1
		for k, i := range cols {
			if c := vmColumns[i]; c.drop > prio {
				drop, prio = k, c.drop
			}
		}
		if drop >= 0 {
			cols = append(cols[:drop], cols[drop+1:]...)
			continue
		}
		for _, i := range cols {
			if want[i] > vmColumns[i].min {
				best = i
				break
			}
		}
		if best < 0 {
			break
		}
		want[best] -= min(want[best]-vmColumns[best].min, over)
	}
	for _, i := range spare {
		used := slices.ContainsFunc(rows, func(r []string) bool { return r[i] != "-" })
		if room := width - total() - 1; used && room >= vmColumns[i].min {
			want[i] = min(want[i], room)
			cols = append(cols, i)
		}
	}
	for _, i := range cols {
		widths = append(widths, want[i])
	}
	return cols, widths
}
