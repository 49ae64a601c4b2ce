// Package termquery stops Bubble Tea from asking the terminal for its
// background colour whenever banger starts.
//
// Bubble Tea v1's package init calls lipgloss.HasDarkBackground, which
// writes an OSC 11 query to a terminal on stdout and waits up to five
// seconds for the answer: every banger command, not only the TUI, paid
// that wait on a terminal that does not answer (script(1), apt's
// pseudo-terminal, some serial consoles) and could lose typed-ahead
// input to it. banger's styles use fixed colours and never ask lipgloss
// about the background, so this package tells lipgloss's default renderer
// the answer instead. Go initializes the packages a program imports in
// import-path order once their own imports are ready, so this package
// ("banger/...") runs its init after lipgloss's and before
// github.com/charmbracelet/bubbletea's.
package termquery

import "github.com/charmbracelet/lipgloss"

func init() { lipgloss.SetHasDarkBackground(true) }
