package tui

import "github.com/charmbracelet/bubbles/key"

// keyMap holds every binding; the help bar and the full help (`?`) are
// generated from it.
type keyMap struct {
	Up, Down, PageUp, PageDown, Top, Bottom key.Binding
	Filter, Sort, Reverse, Detail, Images   key.Binding
	Start, Stop, Restart, Kill, Delete      key.Binding
	Pause, Suspend                          key.Binding
	SSH, Exec, Create, Resize               key.Binding
	Help, Back, Quit                        key.Binding
	// At the exec prompt.
	Run, History, Interrupt, Close key.Binding
}

func newKeyMap() keyMap {
	b := func(help string, desc string, keys ...string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(help, desc))
	}
	return keyMap{
		Up:        b("↑/k", "up", "up", "k"),
		Down:      b("↓/j", "down", "down", "j"),
		PageUp:    b("pgup", "page up", "pgup", "ctrl+u"),
		PageDown:  b("pgdn", "page down", "pgdown", "ctrl+d"),
		Top:       b("g", "first", "home", "g"),
		Bottom:    b("G", "last", "end", "G"),
		Filter:    b("/", "filter", "/"),
		Sort:      b("o", "sort column", "o"),
		Reverse:   b("O", "reverse sort", "O"),
		Detail:    b("enter", "details", "enter"),
		Images:    b("tab", "images", "tab", "i"),
		Start:     b("s", "start", "s"),
		Stop:      b("x", "stop", "x"),
		Restart:   b("r", "restart", "r"),
		Kill:      b("K", "kill", "K"),
		Pause:     b("p", "pause/resume", "p"),
		Suspend:   b("z", "suspend", "z"),
		Delete:    b("D", "delete", "D", "delete"),
		SSH:       b("c", "ssh", "c"),
		Exec:      b("e", "exec", "e"),
		Create:    b("n", "new", "n"),
		Resize:    b("R", "resize", "R"),
		Help:      b("?", "keys", "?"),
		Back:      b("esc", "back", "esc"),
		Quit:      b("q", "quit", "q", "ctrl+c"),
		Run:       b("enter", "run", "enter"),
		History:   b("↑/↓", "history", "up", "down"),
		Interrupt: b("ctrl+c", "stop", "ctrl+c"),
		Close:     b("esc", "close", "esc"),
	}
}

// vmHelp is the key map shown in the VMs view.
type vmHelp struct{ k keyMap }

func (h vmHelp) ShortHelp() []key.Binding {
	return []key.Binding{h.k.Start, h.k.Stop, h.k.SSH, h.k.Exec, h.k.Create, h.k.Delete, h.k.Filter, h.k.Images, h.k.Help, h.k.Quit}
}

// shortHelpSpare are the VMs view's help bar entries that a narrow
// terminal leaves out, first to go first.
func (h vmHelp) shortHelpSpare() []key.Binding {
	return []key.Binding{h.k.Delete, h.k.Create, h.k.Images, h.k.Filter}
}

func (h vmHelp) FullHelp() [][]key.Binding {
	k := h.k
	return [][]key.Binding{
		{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom},
		{k.Filter, k.Sort, k.Reverse, k.Detail, k.Images, k.Back},
		{k.Start, k.Stop, k.Restart, k.Kill, k.Delete, k.Pause, k.Suspend},
		{k.SSH, k.Exec, k.Create, k.Resize, k.Help, k.Quit},
	}
}

// execHelp is the key map shown while the exec prompt is open.
type execHelp struct {
	k       keyMap
	running bool
}

func (h execHelp) ShortHelp() []key.Binding {
	if h.running {
		cl := h.k.Close
		cl.SetHelp("esc", "stop and close")
		return []key.Binding{h.k.Interrupt, cl}
	}
	return []key.Binding{h.k.Run, h.k.History, h.k.Close}
}

// imageHelp is the key map shown in the images view.
type imageHelp struct{ k keyMap }

func (h imageHelp) ShortHelp() []key.Binding {
	return []key.Binding{h.k.Up, h.k.Down, h.k.Delete, h.k.Images, h.k.Help, h.k.Quit}
}

func (h imageHelp) FullHelp() [][]key.Binding {
	k := h.k
	return [][]key.Binding{{k.Up, k.Down, k.Top, k.Bottom}, {k.Delete, k.Images, k.Back}, {k.Help, k.Quit}}
}
