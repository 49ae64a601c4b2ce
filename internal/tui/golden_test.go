package tui

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"

	"banger/internal/api"
)

// loaded returns a model at the given size with the canned VMs, images and
// the console of the first VM loaded, driven synchronously (no program).
func loaded(t *testing.T, w, h int) *Model {
	t.Helper()
	m := New(context.Background(), Config{Client: newCannedClient(), Now: func() time.Time { return fixedNow }, Refresh: -1,
		Defaults: Defaults{Image: "base", CPUs: 2, Memory: "1G", Disk: "8G"}})
	t.Cleanup(m.Close)
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	m.Update(m.fetchImages()())
	m.Update(m.fetchVMs()())
	m.Update(logStartMsg{seq: m.logs.seq, name: m.selected})
	// The canned log is written in one piece and the stream ends.
	for {
		select {
		case msg := <-m.inbox:
			m.Update(msg)
			if l, ok := msg.(logMsg); ok && l.ended {
				return m
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the console stream did not end")
		}
	}
}

// keyMsg is a key press: a name such as "enter", or the characters to
// type ("abc" is one message, as a paste).
func keyMsg(k string) tea.KeyMsg {
	switch k {
	case "enter":
		return tea.KeyMsg{Type: tea.KeyEnter}
	case "esc":
		return tea.KeyMsg{Type: tea.KeyEsc}
	case "tab":
		return tea.KeyMsg{Type: tea.KeyTab}
	case "up":
		return tea.KeyMsg{Type: tea.KeyUp}
	case "down":
		return tea.KeyMsg{Type: tea.KeyDown}
	case "ctrl+c":
		return tea.KeyMsg{Type: tea.KeyCtrlC}
	case " ":
		return tea.KeyMsg{Type: tea.KeySpace, Runes: []rune{' '}}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
}

// keys presses keys, dropping the commands they return.
func keys(m *Model, ks ...string) {
	for _, k := range ks {
		m.Update(keyMsg(k))
	}
}

// checkFrame verifies the frame's shape and compares it with its golden
// file (go test -update rewrites them).
func checkFrame(t *testing.T, m *Model, w, h int) {
	t.Helper()
	frame := m.View()
	lines := strings.Split(frame, "\n")
	if len(lines) != h {
		t.Errorf("frame has %d lines, want %d", len(lines), h)
	}
	for i, l := range lines {
		if n := ansi.StringWidth(l); n > w {
			t.Errorf("line %d is %d cells wide, more than %d: %q", i, n, w, l)
		}
		if strings.Contains(l, "\x1b") {
			t.Errorf("line %d has escape codes without color: %q", i, l)
		}
	}
	golden.RequireEqual(t, []byte(frame+"\n"))
}

func TestFrames(t *testing.T) {
	views := []struct {
		name string
		keys []string
		edit func(t *testing.T, m *Model)
	}{
		{name: "vms"},
		{name: "detail", keys: []string{"enter"}},
		{name: "sorted-cpu-desc", keys: []string{"o", "o", "o", "o", "o", "o", "o", "O"}},
		{name: "filter", keys: []string{"/", "b", "a", "s", "e", " ", "r", "u", "n"}},
		{name: "images", keys: []string{"tab", "down"}},
		{name: "images-building", keys: []string{"tab"}, edit: func(t *testing.T, m *Model) {
			m.applyEvent(api.Event{Type: api.EventImageBuild, Name: "noble", Progress: &api.Progress{Step: "provision", Message: "installing packages", Done: 120, Total: 400}})
		}},
		{name: "help", keys: []string{"?"}},
		{name: "create-form", keys: []string{"n", "a", "p", "i", "tab"}},
		{name: "confirm-kill", keys: []string{"K"}},
		{name: "error", edit: func(t *testing.T, m *Model) {
			m.fail(&api.Error{Code: api.CodeInternal, Message: "vm dev: starting the VMM and booting the guest: exit status 1", Hint: "read the logs", Logs: []string{"/home/ada/.local/state/banger/vms/dev/vmm.log"}})
		}},
		{name: "exec-prompt", keys: []string{"e", "uname -a"}},
		{name: "exec-result", keys: []string{"e"}, edit: func(t *testing.T, m *Model) {
			r := newRunner(t, m)
			r.keys("fail 3", "enter")
			r.until("the command to end", func() bool { return !m.execRunning() })
			r.keys("ls /")
		}},
		{name: "exec-running", keys: []string{"e"}, edit: func(t *testing.T, m *Model) {
			r := newRunner(t, m)
			r.keys("sleep", "enter")
			r.screen("sleeping")
		}},
		{name: "exec-error", keys: []string{"G", "e"}, edit: func(t *testing.T, m *Model) {
			r := newRunner(t, m)
			r.keys("true", "enter")
			r.until("the command to end", func() bool { return !m.execRunning() })
		}},
		{name: "empty", edit: func(t *testing.T, m *Model) {
			m.vms = map[string]api.VM{}
			m.relist()
		}},
	}
	for _, size := range [][2]int{{80, 24}, {120, 40}} {
		for _, v := range views {
			t.Run(fmt.Sprintf("%s-%dx%d", v.name, size[0], size[1]), func(t *testing.T) {
				m := loaded(t, size[0], size[1])
				keys(m, v.keys...)
				if v.edit != nil {
					v.edit(t, m)
				}
				checkFrame(t, m, size[0], size[1])
			})
		}
	}
}
