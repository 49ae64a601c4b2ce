package tui

import (
	"context"
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"banger/internal/api"
	"banger/internal/vm"
)

// confirmation is a yes/no question before a destructive action.
type confirmation struct {
	prompt string
	yes    func() tea.Cmd
}

type sshDoneMsg struct {
	name string
	err  error
}

func (m *Model) quit() tea.Cmd {
	m.cancel()
	return tea.Quit
}

// key dispatches a key press to whatever has the focus: a confirmation,
// a form, the exec prompt, the filter, the help, or the current view.
func (m *Model) key(msg tea.KeyMsg) tea.Cmd {
	if msg.Type == tea.KeyCtrlC && !m.execRunning() {
		return m.quit()
	}
	switch {
	case m.confirm != nil:
		c := m.confirm
		m.confirm = nil
		if msg.String() == "y" || msg.String() == "Y" {
			return c.yes()
		}
		m.info("cancelled")
		return nil
	case m.form != nil:
		return m.formKey(msg)
	case m.exec != nil:
		return m.execKey(msg)
	case m.filtering:
		return m.filterKey(msg)
	}
	k := m.keys
	switch {
	case key.Matches(msg, k.Quit):
		return m.quit()
	case key.Matches(msg, k.Help):
		m.fullHelp = !m.fullHelp
		return nil
	case m.fullHelp:
		if key.Matches(msg, k.Back) {
			m.fullHelp = false
		}
		return nil
	case key.Matches(msg, k.Back):
		switch {
		case m.detailFull:
			m.detailFull = false
		case m.view == vmsView && m.filter.Value() != "":
			m.filter.SetValue("")
			return m.relist()
		default:
			m.status = statusLine{}
		}
		return nil
	case key.Matches(msg, k.Images):
		if m.view == vmsView {
			m.view = imagesView
			return m.fetchImages()
		}
		m.view = vmsView
		return nil
	}
	if m.view == imagesView {
		return m.imageKey(msg)
	}
	return m.vmKey(msg)
}

func (m *Model) move(msg tea.KeyMsg, cursor *int, n, page int) bool {
	k := m.keys
	switch {
	case key.Matches(msg, k.Up):
		*cursor--
	case key.Matches(msg, k.Down):
		*cursor++
	case key.Matches(msg, k.PageUp):
		*cursor -= max(page, 1)
	case key.Matches(msg, k.PageDown):
		*cursor += max(page, 1)
	case key.Matches(msg, k.Top):
		*cursor = 0
	case key.Matches(msg, k.Bottom):
		*cursor = n - 1
	default:
		return false
	}
	*cursor = min(max(*cursor, 0), max(n-1, 0))
	return true
}

func (m *Model) vmKey(msg tea.KeyMsg) tea.Cmd {
	k := m.keys
	if m.move(msg, &m.cursor, len(m.rows), m.tableRows()) {
		return m.selectionChanged()
	}
	switch {
	case key.Matches(msg, k.Filter):
		m.filtering = true
		m.filter.Focus()
		return nil
	case key.Matches(msg, k.Sort):
		m.sortCol = (m.sortCol + 1) % len(vmColumns)
		return m.relist()
	case key.Matches(msg, k.Reverse):
		m.sortDesc = !m.sortDesc
		return m.relist()
	case key.Matches(msg, k.Detail):
		m.detailFull = !m.detailFull
		return nil
	case key.Matches(msg, k.Create):
		m.form = m.createForm()
		return nil
	}
	v, ok := m.current()
	if !ok {
		return nil
	}
	name := v.Name
	c := m.cfg.Client
	switch {
	case key.Matches(msg, k.Start):
		return m.runOp(name, "starting", "started", func(ctx context.Context, p func(api.Progress)) (*api.VM, []string, error) {
			v, err := c.StartVM(ctx, name, false, p)
			return &v, nil, err
		})
	case key.Matches(msg, k.Stop):
		return m.runOp(name, "stopping", "stopped", func(ctx context.Context, p func(api.Progress)) (*api.VM, []string, error) {
			v, err := c.StopVM(ctx, name, api.StopVMRequest{}, p)
			return &v, nil, err
		})
	case key.Matches(msg, k.Restart):
		return m.runOp(name, "restarting", "restarted", func(ctx context.Context, p func(api.Progress)) (*api.VM, []string, error) {
			v, err := c.RestartVM(ctx, name, false, p)
			return &v, nil, err
		})
	case key.Matches(msg, k.Kill):
		m.confirm = &confirmation{
			prompt: fmt.Sprintf("Kill %s? Its VMM stops at once, like pulling the plug.", name),
			yes: func() tea.Cmd {
				return m.runOp(name, "killing", "killed", func(ctx context.Context, _ func(api.Progress)) (*api.VM, []string, error) {
					v, err := c.KillVM(ctx, name)
					return &v, nil, err
				})
			},
		}
	case key.Matches(msg, k.Pause) && v.State == string(vm.Paused):
		return m.runOp(name, "resuming", "resumed", func(ctx context.Context, _ func(api.Progress)) (*api.VM, []string, error) {
			v, err := c.ResumeVM(ctx, name)
			return &v, nil, err
		})
	case key.Matches(msg, k.Pause):
		return m.runOp(name, "pausing", "paused", func(ctx context.Context, _ func(api.Progress)) (*api.VM, []string, error) {
			v, err := c.PauseVM(ctx, name)
			return &v, nil, err
		})
	case key.Matches(msg, k.Suspend):
		return m.runOp(name, "suspending", "suspended", func(ctx context.Context, p func(api.Progress)) (*api.VM, []string, error) {
			v, err := c.SuspendVM(ctx, name, p)
			return &v, nil, err
		})
	case key.Matches(msg, k.Delete):
		force := v.State != string(vm.Stopped)
		prompt := fmt.Sprintf("Delete %s and its disks?", name)
		if force {
			prompt = fmt.Sprintf("Delete %s and its disks? It is %s and will be killed first.", name, v.State)
		}
		m.confirm = &confirmation{prompt: prompt, yes: func() tea.Cmd {
			return m.runOp(name, "deleting", "deleted", func(ctx context.Context, _ func(api.Progress)) (*api.VM, []string, error) {
				return nil, nil, c.RemoveVM(ctx, name, api.RemoveVMRequest{Force: force})
			})
		}}
	case key.Matches(msg, k.SSH):
		return m.ssh(v)
	case key.Matches(msg, k.Exec):
		m.openExec(v)
	case key.Matches(msg, k.Resize):
		if v.State != string(vm.Stopped) {
			m.status = statusLine{err: true, text: fmt.Sprintf("vm %s is %s; its disk can only grow while it is stopped", name, v.State), hint: "stop it first with x"}
			return nil
		}
		m.form = m.resizeForm(v)
	}
	return nil
}

// ssh suspends the TUI and hands the terminal to the SSH command.
func (m *Model) ssh(v api.VM) tea.Cmd {
	switch {
	case m.cfg.SSH == nil:
		m.status = statusLine{err: true, text: "ssh is not available here", hint: "use `banger vm ssh " + v.Name + "` in a shell"}
		return nil
	case v.State != string(vm.Running) || v.IP == "":
		m.status = statusLine{err: true, text: fmt.Sprintf("vm %s is %s", v.Name, v.State), hint: "start it first with s"}
		return nil
	}
	name := v.Name
	return tea.Exec(m.cfg.SSH(v), func(err error) tea.Msg { return sshDoneMsg{name: name, err: err} })
}

// runOp starts a long operation on one VM (or image) in the background;
// its progress shows in the status line and its end in opDoneMsg.
func (m *Model) runOp(name, verb, done string, fn func(context.Context, func(api.Progress)) (*api.VM, []string, error)) tea.Cmd {
	if op, busy := m.ops[name]; busy {
		m.status = statusLine{err: true, text: fmt.Sprintf("%s is busy %s", name, op.verb), hint: "wait for it to finish"}
		return nil
	}
	m.ops[name] = &operation{verb: verb}
	m.info(verb + " " + name)
	run := func() tea.Msg {
		v, warnings, err := fn(m.ctx, func(p api.Progress) { m.send(progressMsg{key: name, p: p}) })
		return opDoneMsg{key: name, verb: done, vm: v, err: err, warnings: warnings}
	}
	return tea.Batch(m.startSpinner(), run)
}

// finish ends an operation: errors go to the status line with their hint
// and logs; results update the table at once (the event follows).
func (m *Model) finish(msg opDoneMsg) tea.Cmd {
	delete(m.ops, msg.key)
	if msg.err != nil {
		if m.ctx.Err() == nil {
			m.fail(msg.err)
			m.status.text = msg.key + ": " + m.status.text
		}
		return nil
	}
	text := msg.key + " " + msg.verb
	if len(msg.warnings) > 0 {
		text += " (warning: " + msg.warnings[0] + ")"
	}
	m.info(text)
	switch {
	case strings.HasPrefix(msg.key, "image "):
		return m.fetchImages()
	case msg.verb == "deleted":
		if _, ok := m.vms[msg.key]; ok {
			delete(m.vms, msg.key)
			return m.relist()
		}
	case msg.vm != nil && msg.vm.Name != "":
		m.vms[msg.vm.Name] = *msg.vm
		return m.relist()
	}
	return nil
}

func (m *Model) filterKey(msg tea.KeyMsg) tea.Cmd {
	switch msg.Type {
	case tea.KeyEsc:
		m.filtering = false
		m.filter.Blur()
		m.filter.SetValue("")
		return m.relist()
	case tea.KeyEnter:
		m.filtering = false
		m.filter.Blur()
		return nil
	case tea.KeyUp, tea.KeyDown:
		m.move(msg, &m.cursor, len(m.rows), 1)
		return m.selectionChanged()
	}
	m.filter.update(msg)
	return m.relist()
}

func (m *Model) imageKey(msg tea.KeyMsg) tea.Cmd {
	if m.move(msg, &m.imgCursor, len(m.images), m.bodyHeight()-4) {
		return nil
	}
	if !key.Matches(msg, m.keys.Delete) || m.imgCursor >= len(m.images) {
		return nil
	}
	img := m.images[m.imgCursor]
	prompt := fmt.Sprintf("Delete image %s?", img.Name)
	if img.VMs > 0 {
		prompt = fmt.Sprintf("Delete image %s? %d VM(s) still use it.", img.Name, img.VMs)
	}
	c := m.cfg.Client
	m.confirm = &confirmation{prompt: prompt, yes: func() tea.Cmd {
		return m.runOp("image "+img.Name, "deleting", "deleted", func(ctx context.Context, _ func(api.Progress)) (*api.VM, []string, error) {
			return nil, nil, c.RemoveImage(ctx, img.Name)
		})
	}}
	return nil
}
