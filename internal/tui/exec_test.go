package tui

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/bubbles/spinner"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/teatest"

	"banger/internal/api"
)

// runner drives a model as a program would, on the test's goroutine: the
// commands Update returns run in the background and their messages, and
// those of the model's inbox, are delivered by until.
type runner struct {
	t    *testing.T
	m    *Model
	msgs chan tea.Msg
	done chan struct{}
	// quit is set once a command asked the program to end.
	quit bool
	// delivered are the messages given to the model.
	delivered []tea.Msg
}

func newRunner(t *testing.T, m *Model) *runner {
	r := &runner{t: t, m: m, msgs: make(chan tea.Msg), done: make(chan struct{})}
	t.Cleanup(func() { close(r.done) })
	return r
}

func (r *runner) run(cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	go func() {
		select {
		case r.msgs <- cmd():
		case <-r.done:
		}
	}()
}

func (r *runner) deliver(msg tea.Msg) {
	switch msg := msg.(type) {
	case nil, spinner.TickMsg:
		// No animation in tests.
	case tea.BatchMsg:
		for _, c := range msg {
			r.run(c)
		}
	case tea.QuitMsg:
		r.quit = true
	default:
		r.delivered = append(r.delivered, msg)
		_, cmd := r.m.Update(msg)
		r.run(cmd)
	}
}

// keys presses keys (see keyMsg) and runs the commands they return.
func (r *runner) keys(ks ...string) {
	for _, k := range ks {
		_, cmd := r.m.Update(keyMsg(k))
		r.run(cmd)
	}
}

// until delivers messages until cond holds.
func (r *runner) until(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case msg := <-r.msgs:
			r.deliver(msg)
		case msg := <-r.m.inbox:
			r.deliver(msg)
		case <-deadline:
			r.t.Fatalf("timed out waiting for %s; screen:\n%s", what, r.m.View())
		}
	}
}

// screen waits until the frame contains every one of want.
func (r *runner) screen(want ...string) {
	r.t.Helper()
	r.until(fmt.Sprintf("the screen to show %q", want), func() bool {
		f := r.m.View()
		for _, w := range want {
			if !strings.Contains(f, w) {
				return false
			}
		}
		return true
	})
}

func execs(m *Model) []string {
	c := m.cfg.Client.(*cannedClient)
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.execs...)
}

func TestExecPromptRunsCommand(t *testing.T) {
	m := loaded(t, 80, 24)
	r := newRunner(t, m)
	r.keys("e")
	r.screen("exec in build-cache $ ", "enter run", "esc close")
	r.keys("echo 'a  b' | tr a x", "enter")
	r.until("the command to end", func() bool { return m.exec.out != nil && !m.execRunning() })
	r.screen("exec in build-cache · $ echo 'a  b' | tr a x", "\necho 'a  b' | tr a x\ndone\n", "exit 0")
	if got, want := execs(m), []string{"build-cache sh -c echo 'a  b' | tr a x"}; !slices.Equal(got, want) {
		t.Errorf("execs = %q, want %q", got, want)
	}
	if m.cfg.Client.(*cannedClient).execStdin {
		t.Error("the command got an input; the prompt gives none")
	}
	// The prompt is ready for the next command; stderr and the status
	// show.
	r.keys("fail 3", "enter")
	r.until("the second command to end", func() bool { return len(execs(m)) == 2 && !m.execRunning() })
	r.screen("about to fail\n2> failing with 3\nexit 3")
	if strings.Contains(m.View(), "done") {
		t.Errorf("the first command's output stayed:\n%s", m.View())
	}
	r.keys("esc")
	if m.exec != nil {
		t.Fatal("esc left the exec pane open")
	}
	r.screen("console (following)")
}

func TestExecInStoppedVMShowsHint(t *testing.T) {
	m := loaded(t, 80, 24)
	r := newRunner(t, m)
	// Rows sort by name: web, stopped, is last.
	r.keys("G", "e", "true", "enter")
	r.screen("exec in web $ ", "✗ vm web is stopped, so its guest cannot be reached", "hint: start it with `banger vm start web`")
	if m.status.text != "" {
		t.Errorf("the status line shows %q; the error belongs in the pane", m.status.text)
	}
}

func TestExecEscCancels(t *testing.T) {
	m := loaded(t, 80, 24)
	r := newRunner(t, m)
	r.keys("e", "sleep", "enter")
	r.screen("sleeping", "running in build-cache", "ctrl+c stop", "esc stop and close")
	// The TUI stays responsive while the command runs: a state change
	// shows, and typing goes nowhere.
	v := m.vms["dev"]
	v.State = "stopped"
	r.deliver(eventMsg{api.Event{Type: api.EventVMStopped, Name: "dev", VM: &v}})
	r.screen("dev         stopped")
	r.keys("x", "q")
	if r.quit || m.exec == nil || m.exec.input.Value() != "" {
		t.Fatalf("keys while running: quit %v, pane %v", r.quit, m.exec)
	}
	seq := m.exec.seq
	r.keys("esc")
	if m.exec != nil {
		t.Fatal("esc left the pane open")
	}
	// The fake's Exec returns only once its context is cancelled.
	var done execDoneMsg
	r.until("the command to be cancelled", func() bool {
		for _, msg := range r.delivered {
			if d, ok := msg.(execDoneMsg); ok {
				done = d
				return true
			}
		}
		return false
	})
	if done.seq != seq || done.err == nil {
		t.Errorf("the cancelled command ended with %+v", done)
	}
	if m.exec != nil || r.quit {
		t.Errorf("a late end reopened the pane or quit")
	}
}

func TestExecCtrlCStopsAndKeepsPane(t *testing.T) {
	m := loaded(t, 80, 24)
	r := newRunner(t, m)
	r.keys("e", "sleep", "enter")
	r.screen("sleeping")
	r.keys("ctrl+c")
	r.until("the command to stop", func() bool { return !m.execRunning() })
	r.screen("sleeping\ncancelled", "exec in build-cache $ ")
	if r.quit {
		t.Error("ctrl+c during a command quit the TUI")
	}
	// With no command running, ctrl+c quits as everywhere.
	r.keys("ctrl+c")
	r.until("the quit", func() bool { return r.quit })
}

func TestExecHistory(t *testing.T) {
	m := loaded(t, 80, 24)
	r := newRunner(t, m)
	r.keys("e")
	for _, c := range []string{"echo a", "echo b", "echo b"} {
		r.keys(c, "enter")
		r.until("the command to end", func() bool { return !m.execRunning() })
	}
	r.keys("draft")
	var got []string
	for _, k := range []string{"up", "up", "up", "down", "down", "down"} {
		r.keys(k)
		got = append(got, m.exec.input.Value())
	}
	if want := []string{"echo b", "echo a", "echo a", "echo b", "draft", "draft"}; !slices.Equal(got, want) {
		t.Errorf("history = %q, want %q", got, want)
	}
	// The history outlives the pane and follows to other VMs.
	r.keys("esc", "j", "e", "up")
	if m.exec.vm != "dev" || m.exec.input.Value() != "echo b" {
		t.Errorf("reopened on %s with %q, want dev with the last command", m.exec.vm, m.exec.input.Value())
	}
}

func TestExecOutputIsBounded(t *testing.T) {
	o := &execOutput{}
	out, errw := o.writer(false), o.writer(true)
	// Lines split across writes, a progress line redrawn with \r, control
	// characters, and an unfinished line on each stream.
	for _, s := range []string{"one\ntw", "o\n", "10%\r50%\r100%\n", "\x1b[31mred\x1b[0m\n", "tail"} {
		out.Write([]byte(s))
	}
	errw.Write([]byte("oops\nhalf"))
	lines, dropped := o.tail(10)
	var got []string
	for _, l := range lines {
		got = append(got, fmt.Sprintf("%v:%s", l.stderr, l.text))
	}
	want := []string{"false:one", "false:two", "false:100%", "false:red", "true:oops", "false:tail", "true:half"}
	if !slices.Equal(got, want) || dropped != 0 {
		t.Errorf("lines = %q (dropped %d), want %q", got, dropped, want)
	}

	o = &execOutput{}
	out = o.writer(false)
	for i := range execMaxLines + 100 {
		fmt.Fprintf(out, "line %d\n", i)
	}
	out.Write([]byte(strings.Repeat("x", execMaxLine*2+5)))
	lines, dropped = o.tail(execMaxLines + 10)
	n := len(lines)
	if n != execMaxLines+1 || dropped != 102 {
		t.Fatalf("kept %d lines, dropped %d; want %d and 102", n, dropped, execMaxLines+1)
	}
	if lines[0].text != "line 102" || len(lines[n-3].text) != execMaxLine || len(lines[n-2].text) != execMaxLine || lines[n-1].text != "xxxxx" {
		t.Errorf("first %q, last three of lengths %d %d %d", lines[0].text, len(lines[n-3].text), len(lines[n-2].text), len(lines[n-1].text))
	}
}

func TestExecNotifiesOncePerLook(t *testing.T) {
	calls := 0
	o := &execOutput{notify: func() { calls++ }}
	w := o.writer(false)
	for range 100 {
		w.Write([]byte("x\n"))
	}
	if calls != 1 {
		t.Errorf("100 writes before the model looked notified %d times, want 1", calls)
	}
	o.seen()
	w.Write([]byte("y\n"))
	if calls != 2 {
		t.Errorf("a write after the model looked notified %d times in all, want 2", calls)
	}
}

func TestExecPaneShowsTheTail(t *testing.T) {
	m := loaded(t, 80, 24)
	r := newRunner(t, m)
	r.keys("e")
	p := m.exec
	p.cmd, p.out = "seq 100", &execOutput{}
	for i := 1; i <= 100; i++ {
		fmt.Fprintf(p.out.writer(false), "line %d\n", i)
	}
	// 16 lines of pane: the title, 12 lines of output under a note of
	// what is hidden, the status and the prompt.
	r.screen("$ seq 100 ─", "\n… 88 earlier lines\nline 89\n", "\nline 100\nexit 0\nexec in build-cache $ ")

	// Whatever the size, the frame keeps its shape.
	for w := 30; w <= 90; w += 7 {
		for h := 8; h <= 30; h += 3 {
			m.Update(tea.WindowSizeMsg{Width: w, Height: h})
			lines := strings.Split(m.View(), "\n")
			if len(lines) != h {
				t.Errorf("%dx%d: %d lines", w, h, len(lines))
			}
			for i, l := range lines {
				if n := ansi.StringWidth(l); n > w {
					t.Errorf("%dx%d: line %d is %d cells wide: %q", w, h, i, n, l)
				}
			}
			if !strings.Contains(m.View(), "exec in build-cache $ ") {
				t.Errorf("%dx%d: the prompt does not show:\n%s", w, h, m.View())
			}
		}
	}
}

// TestExecThroughDaemon runs the prompt against a real daemon, whose fake
// guest prints each argument of the command on a line.
func TestExecThroughDaemon(t *testing.T) {
	h := newHarness(t, "dev", "web~")
	h.keys("e", "echo hi", "enter")
	h.eventually("the command to reach the guest", h.called("exec sh -c echo hi"))
	h.waitScreen(regexp.MustCompile(`exit 0`))
	h.keys("esc", "j", "e", "true", "enter")
	h.waitScreen(regexp.MustCompile("hint: start it with `banger vm start web`"))
	// q types into the prompt; ctrl+c quits, no command running.
	h.tm.Send(tea.KeyMsg{Type: tea.KeyCtrlC})
	m := h.tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).(*Model)
	if m.exec == nil || m.exec.vm != "web" {
		t.Fatalf("exec pane %+v, want open on web", m.exec)
	}
	if c := h.inst.Host.Calls(); count(c, "exec ") != 1 {
		t.Errorf("exec calls %q, want only the one in dev", c)
	}
}
