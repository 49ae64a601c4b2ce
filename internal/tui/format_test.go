package tui

import (
	"slices"
	"testing"
	"time"

	"banger/internal/api"
)

func TestShortForwards(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"127.0.0.1:8080:80/tcp"}, "8080:80"},
		{[]string{"127.0.0.1:8080:80/tcp", "127.0.0.1:5353:53/udp", "0.0.0.0:2222:22/tcp", "[::1]:9000:9000/tcp"}, "8080:80, 5353:53/udp, 0.0.0.0:2222:22, [::1]:9000:9000"},
	} {
		if got := shortForwards(c.in); got != c.want {
			t.Errorf("shortForwards(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestForwardsColumnTakesSpareRoom checks that the forwards column only
// uses room the other columns leave, and only when a VM has forwards.
func TestForwardsColumnTakesSpareRoom(t *testing.T) {
	fwd := slices.IndexFunc(vmColumns, func(c column) bool { return c.title == "FORWARDS" })
	cells := func(vms ...api.VM) [][]string {
		var rows [][]string
		for _, v := range vms {
			var r []string
			for _, c := range vmColumns {
				r = append(r, c.cell(v, fixedNow))
			}
			rows = append(rows, r)
		}
		return rows
	}
	v := api.VM{Name: "build-cache", State: "running", IP: "10.213.0.4", DNSName: "build-cache.vm", Image: "debian", CPUs: 4, MemoryMiB: 4096,
		StartedAt: fixedNow.Add(-time.Hour)}
	plain := cells(v)
	v.Forwards = []string{"127.0.0.1:8080:80/tcp"}
	forwarded := cells(v)
	for _, c := range []struct {
		rows  [][]string
		width int
		shown bool
	}{
		{plain, 200, false},
		{forwarded, 200, true},
		{forwarded, 80, false},
	} {
		colsWith, widthsWith := layout(c.rows, c.width)
		if got := slices.Contains(colsWith, fwd); got != c.shown {
			t.Errorf("width %d, forwards %q: column shown = %v, want %v", c.width, c.rows[0][fwd], got, c.shown)
		}
		// The other columns keep the widths they have without forwards.
		colsWithout, widthsWithout := layout(plain, c.width)
		for k, i := range colsWithout {
			if colsWith[k] != i || widthsWith[k] != widthsWithout[k] {
				t.Errorf("width %d: column %s is %d wide with forwards, %d without", c.width, vmColumns[i].title, widthsWith[k], widthsWithout[k])
			}
		}
	}
}
