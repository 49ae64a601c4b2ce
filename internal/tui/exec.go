package tui

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	tea "github.com/charmbracelet/bubbletea"

	"banger/internal/api"
)

// Bounds of the exec pane.
const (
	// execMaxLines is how many lines of a command's output are kept.
	execMaxLines = 500
	// execMaxLine cuts longer lines (in bytes) into pieces.
	execMaxLine = 2048
	// execHistory is how many commands up and down recall.
	execHistory = 50
	// execMaxCommand bounds the prompt, in characters.
	execMaxCommand = 4096
)

// execPane is the command prompt on one VM and the result of the last
// command run there.
type execPane struct {
	vm    string
	input field
	// hist is the position in the model's history while browsing it
	// (len(history) when not); draft keeps what was typed before.
	hist  int
	draft string

	// The last command, or the running one.
	seq       int
	cmd       string
	out       *execOutput
	running   bool
	cancel    context.CancelFunc
	cancelled bool
	code      int
	err       error
}

type (
	// execOutMsg says a command wrote output; it is sent once until the
	// model has seen it, however much is written meanwhile.
	execOutMsg  struct{ seq int }
	execDoneMsg struct {
		seq  int
		code int
		err  error
	}
)

// execLine is one line of output.
type execLine struct {
	text   string
	stderr bool
}

// execOutput collects a command's stdout and stderr as lines, keeping the
// last execMaxLines. The Exec call writes it from its own goroutine; the
// model reads it.
type execOutput struct {
	mu      sync.Mutex
	lines   []execLine
	partial [2][]byte // stdout, stderr
	dropped int
	pending bool
	notify  func()
}

func (o *execOutput) writer(stderr bool) io.Writer {
	return writerFunc(func(p []byte) { o.write(p, stderr) })
}

func (o *execOutput) write(p []byte, stderr bool) {
	i := 0
	if stderr {
		i = 1
	}
	o.mu.Lock()
	buf := append(o.partial[i], p...)
	for {
		n := bytes.IndexByte(buf, '\n')
		if n < 0 && len(buf) < execMaxLine {
			break
		}
		if n < 0 || n > execMaxLine {
			n = execMaxLine
			o.add(string(buf[:n]), stderr)
			buf = buf[n:]
			continue
		}
		o.add(string(buf[:n]), stderr)
		buf = buf[n+1:]
	}
	o.partial[i] = append(o.partial[i][:0], buf...)
	notify := !o.pending && o.notify != nil
	o.pending = true
	o.mu.Unlock()
	if notify {
		o.notify()
	}
}

// add appends a complete line; o.mu is held.
func (o *execOutput) add(l string, stderr bool) {
	o.lines = append(o.lines, execLine{text: sanitize(lastCR(l)), stderr: stderr})
	if n := len(o.lines) - execMaxLines; n > 0 {
		o.lines = append(o.lines[:0:0], o.lines[n:]...)
		o.dropped += n
	}
}

// seen lets the next write notify the model again.
func (o *execOutput) seen() {
	o.mu.Lock()
	o.pending = false
	o.mu.Unlock()
}

// tail returns the last n lines, unfinished ones included, and how many
// earlier lines were dropped.
func (o *execOutput) tail(n int) ([]execLine, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	lines := append([]execLine(nil), o.lines...)
	for i, p := range o.partial {
		if len(p) > 0 {
			lines = append(lines, execLine{text: sanitize(lastCR(string(p))), stderr: i == 1})
		}
	}
	dropped := o.dropped
	if n <= 0 {
		return nil, dropped + len(lines)
	}
	if len(lines) > n {
		dropped += len(lines) - n
		lines = lines[len(lines)-n:]
	}
	return lines, dropped
}

// openExec opens the command prompt on a VM.
func (m *Model) openExec(v api.VM) {
	p := &execPane{vm: v.Name, input: newField("exec in "+v.Name+" $ ", execMaxCommand), hist: len(m.history)}
	p.input.placeholder = "a command for sh -c"
	p.input.Focus()
	m.exec = p
}

// closeExec stops a running command and closes the pane.
func (m *Model) closeExec() {
	if m.exec != nil && m.exec.cancel != nil {
		m.exec.cancel()
	}
	m.exec = nil
}

// execKey handles a key press while the prompt is open.
func (m *Model) execKey(msg tea.KeyMsg) tea.Cmd {
	p := m.exec
	switch msg.Type {
	case tea.KeyEsc:
		m.closeExec()
		return nil
	case tea.KeyCtrlC:
		// Only reached while a command runs: it stops, the pane stays.
		p.cancelled = true
		p.cancel()
		return nil
	}
	if p.running {
		return nil
	}
	switch msg.Type {
	case tea.KeyEnter:
		cmd := strings.TrimSpace(p.input.Value())
		if cmd == "" {
			return nil
		}
		m.remember(cmd)
		p.hist, p.draft = len(m.history), ""
		p.input.SetValue("")
		return m.runExec(p, cmd)
	case tea.KeyUp:
		if p.hist > 0 {
			if p.hist == len(m.history) {
				p.draft = p.input.Value()
			}
			p.hist--
			p.input.SetValue(m.history[p.hist])
		}
		return nil
	case tea.KeyDown:
		if p.hist < len(m.history) {
			p.hist++
			if p.hist == len(m.history) {
				p.input.SetValue(p.draft)
			} else {
				p.input.SetValue(m.history[p.hist])
			}
		}
		return nil
	}
	p.input.update(msg)
	return nil
}

// remember adds a command to the history, unless it repeats the last.
func (m *Model) remember(cmd string) {
	if n := len(m.history); n > 0 && m.history[n-1] == cmd {
		return
	}
	m.history = append(m.history, cmd)
	if n := len(m.history) - execHistory; n > 0 {
		m.history = append(m.history[:0:0], m.history[n:]...)
	}
}

// runExec runs `sh -c cmd` in the pane's VM in the background, with an
// empty stdin; output arrives in the pane as it comes.
func (m *Model) runExec(p *execPane, cmd string) tea.Cmd {
	m.execSeq++
	seq := m.execSeq
	ctx, cancel := context.WithCancel(m.ctx)
	out := &execOutput{notify: func() { m.send(execOutMsg{seq: seq}) }}
	p.seq, p.cmd, p.out, p.running, p.cancel = seq, cmd, out, true, cancel
	p.cancelled, p.code, p.err = false, 0, nil
	name, c := p.vm, m.cfg.Client
	run := func() tea.Msg {
		code, err := c.Exec(ctx, name, api.ExecRequest{Argv: []string{"sh", "-c", cmd}},
			api.ExecIO{Stdout: out.writer(false), Stderr: out.writer(true)})
		return execDoneMsg{seq: seq, code: code, err: err}
	}
	return tea.Batch(m.startSpinner(), run)
}

// execMsg applies an exec message; stale ones (of a closed pane or an
// earlier command) are dropped.
func (m *Model) execMsg(msg tea.Msg) {
	p := m.exec
	switch msg := msg.(type) {
	case execOutMsg:
		if p != nil && p.seq == msg.seq {
			p.out.seen()
		}
	case execDoneMsg:
		if p == nil || p.seq != msg.seq {
			return
		}
		p.running = false
		p.cancel()
		p.code, p.err = msg.code, msg.err
	}
}

func (m *Model) execRunning() bool { return m.exec != nil && m.exec.running }

// execView renders the pane in height lines: a title, the last command's
// output and result, and the prompt (or the spinner while it runs) under
// them, as in a terminal.
func (m *Model) execView(width, height int) []string {
	p := m.exec
	if height <= 0 {
		return nil
	}
	title := "exec in " + p.vm
	if p.cmd != "" {
		title += " · $ " + sanitize(p.cmd)
	}
	bottom := p.input.viewWidth(m.st, width)
	if p.running {
		bottom = m.spin.View() + " running in " + p.vm
	}
	if height == 1 {
		return []string{bottom}
	}
	body := height - 2
	var text []string
	switch {
	case p.out == nil:
		text = append(text, m.st.dim.Render("runs `sh -c COMMAND` in the guest as root, with no input"))
	default:
		var result []string
		switch {
		case p.running:
		case p.cancelled:
			result = []string{m.st.warn.Render("cancelled")}
		case p.err != nil:
			msg, hint, logs := errorParts(p.err)
			result = []string{m.st.err.Render("✗ " + msg)}
			if hint != "" {
				result = append(result, m.st.dim.Render("  hint: "+hint))
			}
			for _, l := range logs {
				result = append(result, m.st.dim.Render("  log: "+l))
			}
		case p.code == 0:
			result = []string{m.st.ok.Render("exit 0")}
		default:
			result = []string{m.st.err.Render(fmt.Sprintf("exit %d", p.code))}
		}
		lines, dropped := p.out.tail(max(body-len(result), 0))
		if dropped > 0 && len(lines) > 0 {
			// The first line room goes to saying how much is hidden.
			lines = lines[1:]
			dropped++
			text = append(text, m.st.dim.Render(fmt.Sprintf("… %d earlier lines", dropped)))
		}
		for _, l := range lines {
			s := clip(l.text, width)
			if l.stderr {
				if !m.st.color {
					s = clip("2> "+l.text, width)
				}
				s = m.st.err.Render(s)
			}
			text = append(text, s)
		}
		text = append(text, result...)
	}
	if len(text) > body {
		text = text[len(text)-body:]
	}
	out := []string{m.rule(title, width)}
	for _, l := range text {
		out = append(out, clip(l, width))
	}
	out = append(out, bottom)
	for len(out) < height {
		out = append(out, "")
	}
	return out
}
