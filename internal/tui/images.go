package tui

import (
	"fmt"
	"sort"
	"strings"
)

// imagesView renders the image list, the selected image's files and the
// progress of image builds the daemon reports.
func (m *Model) imagesView(height int) []string {
	titles := []string{"NAME", "SOURCE", "KERNEL", "SIZE", "ON DISK", "VMS", "CREATED", ""}
	rows := [][]string{titles}
	for _, img := range m.images {
		stale := ""
		if img.Stale {
			stale = "stale"
		}
		rows = append(rows, []string{img.Name, img.Source, dash(img.KernelVersion), size(img.SizeBytes), size(img.AllocatedBytes),
			fmt.Sprint(img.VMs), img.CreatedAt.UTC().Format("2006-01-02 15:04"), stale})
	}
	widths := make([]int, len(titles))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	widths[0] = min(widths[0], 24)
	widths[2] = min(widths[2], 20)
	line := func(r []string) string {
		var cells []string
		for i, c := range r {
			cells = append(cells, fit(c, widths[i]))
		}
		return strings.TrimRight(strings.Join(cells, "  "), " ")
	}
	out := []string{" " + m.st.header.Render(line(titles))}
	if len(m.images) == 0 {
		out = append(out, m.st.dim.Render(" no images: build one with `banger image bootstrap`"))
	}
	for i, r := range rows[1:] {
		l := line(r)
		switch {
		case i == m.imgCursor:
			l = "▸" + l
			if m.st.color {
				l = m.st.selected.Render(fit(l, m.width))
			}
		case m.images[i].Stale:
			l = " " + m.st.warn.Render(l)
		default:
			l = " " + l
		}
		out = append(out, l)
	}
	if names := m.buildNames(); len(names) > 0 {
		out = append(out, "", m.rule("builds", m.width))
		for _, n := range names {
			p := m.builds[n]
			s := fmt.Sprintf(" %s %s · %s", m.spin.View(), n, p.Step)
			if p.Message != "" {
				s += ": " + p.Message
			}
			if p.Total > 0 {
				s += fmt.Sprintf(" %d%%", p.Done*100/p.Total)
			}
			out = append(out, s)
		}
	}
	if m.imgCursor < len(m.images) && height-len(out) > 3 {
		img := m.images[m.imgCursor]
		l := m.st.label.Render
		w := m.width - 10
		out = append(out, "", m.rule("image "+img.Name, m.width))
		for _, kv := range [][2]string{{"rootfs", img.Rootfs}, {"kernel", img.Kernel}, {"initrd", img.Initrd}, {"build log", img.BuildLog}, {"manifest", img.Manifest}} {
			if kv[1] != "" {
				out = append(out, " "+l(fmt.Sprintf("%-9s", kv[0]))+" "+clipLeft(kv[1], w))
			}
		}
		if img.Stale {
			out = append(out, " "+m.st.warn.Render("stale: its manifest or packages changed since it was built; rebuild it"))
		}
	}
	if len(out) > height {
		out = out[:height]
	}
	return out
}

func (m *Model) buildNames() []string {
	var names []string
	for n, p := range m.builds {
		if !(p.Finished && p.Step == "done") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}
