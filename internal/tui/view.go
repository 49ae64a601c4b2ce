package tui

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
)

// statusHeight is 2 when an error carries a hint or log paths.
func (m *Model) statusHeight() int {
	if m.status.err && (m.status.hint != "" || len(m.status.logs) > 0) && len(m.ops) == 0 {
		return 2
	}
	return 1
}

// bodyHeight is what is left between the header and the status and help
// lines.
func (m *Model) bodyHeight() int { return max(m.height-2-m.statusHeight(), 1) }

// split divides the VM view's body between the table and the detail pane.
func (m *Model) split() (table, detail int) {
	body := m.bodyHeight()
	if m.detailFull {
		return 0, body
	}
	if m.exec != nil {
		// The table keeps its rows, in at most a third of the body; the
		// exec pane takes the rest.
		table = min(max(len(m.rows), 1)+1, max(body/3, 2))
		return table, body - table
	}
	if body < 12 {
		return body, 0
	}
	// The detail pane gets two fifths (7 to 16 lines), and whatever the
	// table does not need when there are few VMs.
	detail = min(max(body*2/5, 7), 16)
	if need := max(len(m.rows), 1) + 1; need < body-detail {
		detail = body - need
	}
	return body - detail, detail
}

// tableRows is how many VM rows the table shows.
func (m *Model) tableRows() int {
	t, _ := m.split()
	return max(t-1, 1)
}

// View renders the whole screen: exactly height lines of at most width
// cells.
func (m *Model) View() string {
	if m.width < 30 || m.height < 8 {
		return clip("banger: the terminal is too small (need 30×8)", m.width)
	}
	lines := []string{m.headerView()}
	body := m.bodyHeight()
	var content []string
	switch {
	case m.confirm != nil:
		content = m.center(m.st.box.Render(m.confirm.prompt+"\n\n"+m.st.title.Render("y")+" yes   "+m.st.title.Render("any other key")+" no"), body)
	case m.form != nil:
		content = m.center(m.form.view(m.st, m.width), body)
	case m.fullHelp:
		content = m.center(m.st.box.Render(m.helpFull()+"\n\n"+m.st.dim.Render("? or esc closes this")), body)
	case m.view == imagesView:
		content = m.imagesView(body)
	default:
		content = m.vmsView()
	}
	for len(content) < body {
		content = append(content, "")
	}
	lines = append(lines, content[:body]...)
	lines = append(lines, m.statusView()...)
	lines = append(lines, m.helpBar())
	for i, l := range lines {
		lines[i] = clip(l, m.width)
	}
	return strings.Join(lines, "\n")
}

func (m *Model) center(box string, height int) []string {
	return strings.Split(lipgloss.Place(m.width, height, lipgloss.Center, lipgloss.Center, box), "\n")
}

func (m *Model) helpFull() string {
	if m.view == imagesView {
		return m.help.FullHelpView(imageHelp{m.keys}.FullHelp())
	}
	return m.help.FullHelpView(vmHelp{m.keys}.FullHelp())
}

func (m *Model) helpBar() string {
	switch {
	case m.exec != nil && m.confirm == nil && m.form == nil:
		return m.help.ShortHelpView(execHelp{k: m.keys, running: m.exec.running}.ShortHelp())
	case m.view == imagesView:
		return m.help.ShortHelpView(imageHelp{m.keys}.ShortHelp())
	}
	// Leave out the spare entries a narrow terminal has no room for,
	// rather than the last ones (the help and quit keys).
	h := vmHelp{m.keys}
	bindings := h.ShortHelp()
	wide := m.help
	wide.Width = 0
	for _, spare := range h.shortHelpSpare() {
		if ansi.StringWidth(wide.ShortHelpView(bindings)) <= m.width {
			break
		}
		bindings = slices.DeleteFunc(bindings, func(b key.Binding) bool { return b.Help() == spare.Help() })
	}
	return m.help.ShortHelpView(bindings)
}

func (m *Model) headerView() string {
	tab := func(label string, on bool) string {
		if on {
			if m.st.color {
				return m.st.tabOn.Render(" " + label + " ")
			}
			return "[" + label + "]"
		}
		return m.st.tab.Render(" " + label + " ")
	}
	running := 0
	for _, v := range m.vms {
		if v.State == "running" {
			running++
		}
	}
	left := m.st.title.Render("banger") + "  " + tab(fmt.Sprintf("VMs %d", len(m.vms)), m.view == vmsView) + " " + tab(fmt.Sprintf("Images %d", len(m.images)), m.view == imagesView)
	var right []string
	if m.view == vmsView {
		if m.loaded {
			right = append(right, fmt.Sprintf("%d running", running))
		}
		dir := "▲"
		if m.sortDesc {
			dir = "▼"
		}
		right = append(right, "sort "+strings.ToLower(vmColumns[m.sortCol].title)+" "+dir)
	}
	r := m.st.dim.Render(strings.Join(right, " · "))
	if m.filtering || m.filter.Value() != "" {
		f := m.filter.view(m.st)
		if !m.filtering {
			f = "/" + m.filter.Value()
		}
		r = f + "  " + r
	}
	gap := m.width - ansi.StringWidth(left) - ansi.StringWidth(r)
	if gap < 1 {
		return left + " " + r
	}
	return left + strings.Repeat(" ", gap) + r
}

// vmsView renders the VM table and the detail pane.
func (m *Model) vmsView() []string {
	tableH, detailH := m.split()
	var out []string
	if tableH > 0 {
		out = append(out, m.tableView(tableH)...)
	}
	switch {
	case detailH <= 0:
	case m.exec != nil:
		out = append(out, m.execView(m.width, detailH)...)
	default:
		out = append(out, m.detailView(m.width, detailH, m.detailFull)...)
	}
	return out
}

func (m *Model) tableView(height int) []string {
	now := m.cfg.Now()
	cells := make([][]string, len(m.rows))
	for i, v := range m.rows {
		row := make([]string, len(vmColumns))
		for c, col := range vmColumns {
			row[c] = col.cell(v, now)
		}
		if op, ok := m.ops[v.Name]; ok {
			row[1] = op.verb
		}
		cells[i] = row
	}
	cols, widths := layout(cells, m.width)
	render := func(row []string, style func(c int, s string) string) string {
		var b strings.Builder
		for k, c := range cols {
			s := row[c]
			if vmColumns[c].right {
				s = fmt.Sprintf("%*s", widths[k], clip(s, widths[k]))
			}
			s = fit(s, widths[k])
			if style != nil {
				s = style(c, s)
			}
			b.WriteString(s)
			if k < len(cols)-1 {
				b.WriteString(" ")
			}
		}
		return strings.TrimRight(b.String(), " ")
	}
	titles := make([]string, len(vmColumns))
	for i, c := range vmColumns {
		titles[i] = c.title
		if i == m.sortCol {
			titles[i] += map[bool]string{false: "▲", true: "▼"}[m.sortDesc]
		}
	}
	out := []string{" " + m.st.header.Render(render(titles, nil))}
	rows := height - 1
	switch {
	case !m.loaded:
		return append(out, m.st.dim.Render(" loading VMs…"))
	case len(m.vms) == 0:
		return append(out, m.st.dim.Render(" no VMs yet: press n to create one"))
	case len(m.rows) == 0:
		return append(out, m.st.dim.Render(" no VM matches /"+m.filter.Value()+" (esc clears the filter)"))
	}
	off := min(max(m.offset, m.cursor-rows+1), m.cursor)
	off = min(max(off, 0), max(len(m.rows)-rows, 0))
	for i := off; i < min(off+rows, len(m.rows)); i++ {
		if i == m.cursor {
			line := "▸" + render(cells[i], nil)
			if m.st.color {
				line = m.st.selected.Render(fit(line, m.width))
			}
			out = append(out, line)
			continue
		}
		state := m.rows[i].State
		out = append(out, " "+render(cells[i], func(c int, s string) string {
			if c == 1 {
				return m.st.state(state).Render(s)
			}
			return s
		}))
	}
	return out
}

// statusView renders the status line: running operations first, then the
// last message or error with its hint and logs.
func (m *Model) statusView() []string {
	if len(m.ops) > 0 {
		keys := make([]string, 0, len(m.ops))
		for k := range m.ops {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		op := m.ops[keys[0]]
		s := m.spin.View() + " " + op.verb + " " + keys[0]
		if p := op.progress; p.Step != "" {
			s += " · " + p.Step
			if p.Message != "" {
				s += ": " + p.Message
			}
			if p.Total > 0 {
				s += fmt.Sprintf(" %d%%", p.Done*100/p.Total)
			}
		}
		if len(keys) > 1 {
			s += fmt.Sprintf(" (+%d more)", len(keys)-1)
		}
		return []string{s}
	}
	st := m.status
	if !st.err {
		return []string{m.st.ok.Render(st.text)}
	}
	out := []string{m.st.err.Render("✗ " + st.text)}
	if m.statusHeight() == 2 {
		var parts []string
		if st.hint != "" {
			parts = append(parts, "hint: "+st.hint)
		}
		for _, l := range st.logs {
			parts = append(parts, "log: "+l)
		}
		out = append(out, m.st.dim.Render("  "+strings.Join(parts, " · ")))
	}
	return out
}
