package tui

import (
	"io"
	"os"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	// Before Bubble Tea's init: no terminal query at every start.
	_ "banger/internal/termquery"
)

// styles are the UI's lipgloss styles, all from one renderer so that
// turning color off turns every escape code off.
type styles struct {
	color    bool
	title    lipgloss.Style
	tab      lipgloss.Style
	tabOn    lipgloss.Style
	header   lipgloss.Style
	selected lipgloss.Style
	dim      lipgloss.Style
	label    lipgloss.Style
	err      lipgloss.Style
	ok       lipgloss.Style
	warn     lipgloss.Style
	box      lipgloss.Style
	states   map[string]lipgloss.Style
}

func newStyles(color bool, out io.Writer) styles {
	if out == nil {
		out = os.Stdout
	}
	r := lipgloss.NewRenderer(out)
	if !color {
		r.SetColorProfile(termenv.Ascii)
	}
	s := styles{color: color}
	s.title = r.NewStyle().Bold(true)
	s.tab = r.NewStyle().Foreground(lipgloss.Color("245"))
	s.tabOn = r.NewStyle().Bold(true).Foreground(lipgloss.Color("212"))
	s.header = r.NewStyle().Bold(true).Foreground(lipgloss.Color("245"))
	s.selected = r.NewStyle().Reverse(true)
	s.dim = r.NewStyle().Foreground(lipgloss.Color("245"))
	s.label = r.NewStyle().Foreground(lipgloss.Color("245"))
	s.err = r.NewStyle().Foreground(lipgloss.Color("9"))
	s.ok = r.NewStyle().Foreground(lipgloss.Color("10"))
	s.warn = r.NewStyle().Foreground(lipgloss.Color("11"))
	s.box = r.NewStyle().Border(lipgloss.RoundedBorder()).Padding(0, 1)
	s.states = map[string]lipgloss.Style{
		"running":   r.NewStyle().Foreground(lipgloss.Color("10")),
		"stopped":   r.NewStyle().Foreground(lipgloss.Color("245")),
		"error":     r.NewStyle().Foreground(lipgloss.Color("9")),
		"creating":  r.NewStyle().Foreground(lipgloss.Color("11")),
		"starting":  r.NewStyle().Foreground(lipgloss.Color("11")),
		"stopping":  r.NewStyle().Foreground(lipgloss.Color("11")),
		"paused":    r.NewStyle().Foreground(lipgloss.Color("14")),
		"suspended": r.NewStyle().Foreground(lipgloss.Color("12")),
	}
	return s
}

func (s styles) state(state string) lipgloss.Style {
	if st, ok := s.states[state]; ok {
		return st
	}
	return s.warn
}
