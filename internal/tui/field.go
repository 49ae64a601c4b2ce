package tui

import (
	"unicode"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
)

// field is a one-line text input. (bubbles/textinput would do, but it
// pulls in a clipboard module that go.mod does not carry.)
type field struct {
	prompt      string
	placeholder string
	limit       int
	value       []rune
	pos         int
	focused     bool
}

func newField(prompt string, limit int) field { return field{prompt: prompt, limit: limit} }

// Value returns the text.
func (f *field) Value() string { return string(f.value) }

// SetValue replaces the text and puts the cursor at its end.
func (f *field) SetValue(s string) {
	f.value = []rune(s)
	if f.limit > 0 && len(f.value) > f.limit {
		f.value = f.value[:f.limit]
	}
	f.pos = len(f.value)
}

func (f *field) Focus() { f.focused = true }
func (f *field) Blur()  { f.focused = false }

// update edits the text for one key press.
func (f *field) update(msg tea.KeyMsg) {
	switch msg.Type {
	case tea.KeyRunes, tea.KeySpace:
		rs := msg.Runes
		if msg.Type == tea.KeySpace {
			rs = []rune{' '}
		}
		var clean []rune
		for _, r := range rs {
			if unicode.IsPrint(r) {
				clean = append(clean, r)
			}
		}
		if f.limit > 0 {
			clean = clean[:min(len(clean), max(f.limit-len(f.value), 0))]
		}
		f.value = append(f.value[:f.pos:f.pos], append(clean, f.value[f.pos:]...)...)
		f.pos += len(clean)
	case tea.KeyBackspace:
		if f.pos > 0 {
			f.value = append(f.value[:f.pos-1], f.value[f.pos:]...)
			f.pos--
		}
	case tea.KeyDelete:
		if f.pos < len(f.value) {
			f.value = append(f.value[:f.pos], f.value[f.pos+1:]...)
		}
	case tea.KeyLeft:
		f.pos = max(f.pos-1, 0)
	case tea.KeyRight:
		f.pos = min(f.pos+1, len(f.value))
	case tea.KeyHome, tea.KeyCtrlA:
		f.pos = 0
	case tea.KeyEnd, tea.KeyCtrlE:
		f.pos = len(f.value)
	case tea.KeyCtrlU:
		f.value = append([]rune(nil), f.value[f.pos:]...)
		f.pos = 0
	case tea.KeyCtrlW:
		i := f.pos
		for i > 0 && f.value[i-1] == ' ' {
			i--
		}
		for i > 0 && f.value[i-1] != ' ' {
			i--
		}
		f.value = append(f.value[:i], f.value[f.pos:]...)
		f.pos = i
	}
}

// viewWidth renders the field in at most width cells, scrolling the text
// so that the cursor stays visible; "…" marks the hidden ends.
func (f *field) viewWidth(st styles, width int) string {
	room := width - ansi.StringWidth(f.prompt) - 1 // one cell for the cursor at the end
	if room < 2 || len(f.value) <= room {
		return f.view(st)
	}
	start := max(f.pos-room+1, 0)
	end := min(start+room, len(f.value))
	g := *f
	g.value = append([]rune(nil), f.value[start:end]...)
	g.pos = f.pos - start
	if start > 0 {
		g.value[0] = '…'
	}
	if end < len(f.value) {
		g.value[len(g.value)-1] = '…'
	}
	return g.view(st)
}

// view renders the prompt and the text with a steady cursor: reversed
// with color, a bar without.
func (f *field) view(st styles) string {
	if !f.focused {
		if len(f.value) == 0 {
			return f.prompt + st.dim.Render(f.placeholder)
		}
		return f.prompt + string(f.value)
	}
	before, after := string(f.value[:f.pos]), string(f.value[f.pos:])
	if !st.color {
		return f.prompt + before + "▏" + after
	}
	under := " "
	if after != "" {
		r := []rune(after)
		under, after = string(r[0]), string(r[1:])
	}
	return f.prompt + before + st.selected.Render(under) + after
}
