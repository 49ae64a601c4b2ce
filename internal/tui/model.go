package tui

import (
	"context"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/spinner"
	tea "github.com/charmbracelet/bubbletea"

	"banger/internal/api"
)

type viewKind int

const (
	vmsView viewKind = iota
	imagesView
)

// Model is the TUI's Bubble Tea model. Create it with New; it is driven by
// a tea.Program (see Run).
type Model struct {
	cfg    Config
	ctx    context.Context
	cancel context.CancelFunc
	// inbox carries messages from background goroutines (event stream,
	// console follow, operation progress) into the program.
	inbox chan tea.Msg
	st    styles
	keys  keyMap
	help  help.Model
	spin  spinner.Model

	width, height int
	view          viewKind
	fullHelp      bool
	detailFull    bool

	vms       map[string]api.VM
	loaded    bool
	fetching  bool
	refetch   bool
	changedAt map[string]time.Time // last event per VM, to keep newer state than a list in flight
	rows      []api.VM             // filtered and sorted
	cursor    int
	offset    int
	selected  string
	// want is a VM to select once it appears (one the user just created).
	want      string
	sortCol   int
	sortDesc  bool
	filtering bool
	filter    field

	images    []api.Image
	imgCursor int
	builds    map[string]api.Progress

	logs logTail
	ops  map[string]*operation
	// spinning is true while the spinner's tick loop runs.
	spinning bool

	status statusLine
	// streamDown is the status text of a lost event stream, cleared
	// once a re-fetch succeeds.
	streamDown string
	confirm    *confirmation
	form       *form
	// exec is the command prompt on a VM, when open.
	exec    *execPane
	execSeq int
	// history holds the commands run at the prompt, oldest first.
	history []string
}

// operation is a long-running request in flight for one VM or image.
type operation struct {
	verb     string
	progress api.Progress
}

// statusLine is the one-line message under the table.
type statusLine struct {
	text string
	err  bool
	hint string
	logs []string
}

// New builds the model. ctx bounds every request and background stream it
// makes; Close (or ctx ending) stops them.
func New(ctx context.Context, cfg Config) *Model {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Refresh == 0 {
		cfg.Refresh = defaultRefresh
	}
	if cfg.LogLines <= 0 {
		cfg.LogLines = 200
	}
	ctx, cancel := context.WithCancel(ctx)
	m := &Model{
		cfg: cfg, ctx: ctx, cancel: cancel,
		inbox:     make(chan tea.Msg, 1024),
		st:        newStyles(cfg.Color, cfg.Output),
		keys:      newKeyMap(),
		help:      help.New(),
		spin:      spinner.New(spinner.WithSpinner(spinner.MiniDot)),
		width:     80,
		height:    24,
		vms:       map[string]api.VM{},
		changedAt: map[string]time.Time{},
		builds:    map[string]api.Progress{},
		ops:       map[string]*operation{},
	}
	m.help.Styles.ShortKey = m.st.title
	m.help.Styles.FullKey = m.st.title
	m.help.Styles.ShortDesc = m.st.dim
	m.help.Styles.FullDesc = m.st.dim
	m.help.Styles.ShortSeparator = m.st.dim
	m.help.ShortSeparator = "  "
	m.help.Styles.FullSeparator = m.st.dim
	m.help.Styles.Ellipsis = m.st.dim
	m.spin.Style = m.st.warn
	m.filter = newField("/", 32)
	return m
}

// Close stops the model's background streams.
func (m *Model) Close() { m.cancel() }

// Init loads the VMs and images and subscribes to the event stream.
func (m *Model) Init() tea.Cmd {
	m.fetching = true
	cmds := []tea.Cmd{m.fetchVMs(), m.fetchImages(), m.listen(), m.subscribe()}
	if m.cfg.Refresh > 0 {
		cmds = append(cmds, m.tick())
	}
	return tea.Batch(cmds...)
}

// Messages of the model.
type (
	vmsMsg struct {
		vms []api.VM
		err error
		at  time.Time
	}
	imagesMsg struct {
		images []api.Image
		err    error
	}
	eventMsg     struct{ ev api.Event }
	streamErrMsg struct{ err error }
	resyncMsg    struct{}
	tickMsg      struct{}
	progressMsg  struct {
		key string
		p   api.Progress
	}
	opDoneMsg struct {
		key, verb string
		vm        *api.VM
		err       error
		warnings  []string
	}
	inboxMsg struct{ msg tea.Msg }
)

// send hands a message from a background goroutine to the program.
func (m *Model) send(msg tea.Msg) {
	select {
	case m.inbox <- msg:
	case <-m.ctx.Done():
	}
}

// listen waits for the next message from the background goroutines.
func (m *Model) listen() tea.Cmd {
	return func() tea.Msg {
		select {
		case msg := <-m.inbox:
			return inboxMsg{msg}
		case <-m.ctx.Done():
			return nil
		}
	}
}

func (m *Model) fetchVMs() tea.Cmd {
	return func() tea.Msg {
		at := time.Now()
		vms, err := m.cfg.Client.VMs(m.ctx, false)
		return vmsMsg{vms: vms, err: err, at: at}
	}
}

func (m *Model) fetchImages() tea.Cmd {
	return func() tea.Msg {
		imgs, err := m.cfg.Client.Images(m.ctx)
		return imagesMsg{images: imgs, err: err}
	}
}

func (m *Model) tick() tea.Cmd {
	return tea.Tick(m.cfg.Refresh, func(time.Time) tea.Msg { return tickMsg{} })
}

// subscribe follows the daemon's event stream in the background, and
// reconnects (with a full re-fetch) when the daemon restarts.
func (m *Model) subscribe() tea.Cmd {
	return func() tea.Msg {
		go func() {
			for {
				err := m.cfg.Client.Events(m.ctx, func(ev api.Event) error {
					m.send(eventMsg{ev})
					return nil
				})
				if m.ctx.Err() != nil {
					return
				}
				m.send(streamErrMsg{err})
				select {
				case <-m.ctx.Done():
					return
				case <-time.After(time.Second):
				}
				m.send(resyncMsg{})
			}
		}()
		return nil
	}
}

// Update handles one message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if in, ok := msg.(inboxMsg); ok {
		cmd := m.handle(in.msg)
		return m, tea.Batch(cmd, m.listen())
	}
	return m, m.handle(msg)
}

func (m *Model) handle(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.help.Width = msg.Width
		m.clampCursor()
		return nil
	case tea.KeyMsg:
		return m.key(msg)
	case vmsMsg:
		return m.applyVMs(msg)
	case imagesMsg:
		if msg.err != nil {
			m.fail(msg.err)
			return nil
		}
		m.images = msg.images
		m.imgCursor = min(m.imgCursor, max(len(m.images)-1, 0))
		return nil
	case eventMsg:
		return m.applyEvent(msg.ev)
	case streamErrMsg:
		if msg.err != nil {
			m.fail(msg.err)
			m.streamDown = m.status.text
		}
		return nil
	case resyncMsg:
		return tea.Batch(m.requestVMs(), m.fetchImages())
	case tickMsg:
		cmds := []tea.Cmd{m.tick(), m.requestVMs()}
		if m.view == imagesView {
			cmds = append(cmds, m.fetchImages())
		}
		return tea.Batch(cmds...)
	case progressMsg:
		if op, ok := m.ops[msg.key]; ok {
			op.progress = msg.p
		}
		return nil
	case opDoneMsg:
		return m.finish(msg)
	case logMsg:
		m.logs.apply(msg)
		return nil
	case logStartMsg:
		return m.startLogs(msg)
	case sshDoneMsg:
		if msg.err != nil {
			m.fail(msg.err)
		} else {
			m.info("ssh session to " + msg.name + " ended")
		}
		return nil
	case execOutMsg, execDoneMsg:
		m.execMsg(msg)
		return nil
	case spinner.TickMsg:
		if len(m.ops) == 0 && len(m.buildNames()) == 0 && !m.execRunning() {
			m.spinning = false
			return nil
		}
		var cmd tea.Cmd
		m.spin, cmd = m.spin.Update(msg)
		return cmd
	}
	return nil
}

// requestVMs re-fetches the list unless a fetch is already in flight, in
// which case one more follows it.
func (m *Model) requestVMs() tea.Cmd {
	if m.fetching {
		m.refetch = true
		return nil
	}
	m.fetching = true
	return m.fetchVMs()
}

// applyVMs replaces the VM set with a fetched list, keeping entries that
// events changed after the fetch started (the list may predate them).
func (m *Model) applyVMs(msg vmsMsg) tea.Cmd {
	m.fetching = false
	var next tea.Cmd
	if m.refetch {
		m.refetch = false
		next = m.requestVMs()
	}
	if msg.err != nil {
		if m.ctx.Err() == nil {
			m.fail(msg.err)
		}
		return next
	}
	fresh := make(map[string]api.VM, len(msg.vms))
	for _, v := range msg.vms {
		fresh[v.Name] = v
	}
	for name, at := range m.changedAt {
		if at.After(msg.at) {
			if v, ok := m.vms[name]; ok {
				fresh[name] = v
			} else {
				delete(fresh, name)
			}
		} else {
			delete(m.changedAt, name)
		}
	}
	m.vms = fresh
	m.loaded = true
	if m.streamDown != "" && m.status.text == m.streamDown {
		m.info("reconnected to bangerd")
	}
	m.streamDown = ""
	return tea.Batch(next, m.relist())
}

// applyEvent applies one state change from the event stream.
func (m *Model) applyEvent(ev api.Event) tea.Cmd {
	switch ev.Type {
	case api.EventVMRemoved:
		m.changedAt[ev.Name] = time.Now()
		delete(m.vms, ev.Name)
	case api.EventVMCreated, api.EventVMStarted, api.EventVMStopped, api.EventVMError, api.EventVMUpdated:
		if ev.VM == nil || ev.VM.Hidden {
			return nil
		}
		m.changedAt[ev.Name] = time.Now()
		m.vms[ev.Name] = *ev.VM
		if ev.Type == api.EventVMStarted && ev.Name == m.selected {
			// A new boot starts a new console log.
			m.relist()
			return m.followSelected()
		}
	case api.EventImageAdded:
		delete(m.builds, ev.Name)
		return m.fetchImages()
	case api.EventImageRemoved:
		return m.fetchImages()
	case api.EventImageBuild:
		if ev.Progress != nil {
			m.builds[ev.Name] = *ev.Progress
		}
		return m.startSpinner()
	default:
		return nil
	}
	return m.relist()
}

// relist recomputes the visible rows and keeps the selection on the same
// VM; it returns a command to follow the console of a newly selected VM.
func (m *Model) relist() tea.Cmd {
	m.rows = visibleVMs(m.vms, m.filter.Value(), m.sortCol, m.sortDesc)
	idx := -1
	for i, v := range m.rows {
		if v.Name == m.want {
			idx, m.want = i, ""
			break
		}
		if v.Name == m.selected {
			idx = i
		}
	}
	if idx < 0 {
		idx = min(m.cursor, len(m.rows)-1)
	}
	m.cursor = max(idx, 0)
	return m.selectionChanged()
}

// selectionChanged updates the selected name after the cursor moved and,
// when it changed, schedules following the new VM's console.
func (m *Model) selectionChanged() tea.Cmd {
	m.clampCursor()
	name := ""
	if m.cursor < len(m.rows) {
		name = m.rows[m.cursor].Name
	}
	if name == m.selected {
		return nil
	}
	m.selected = name
	if !m.loaded {
		return nil
	}
	return m.followSelected()
}

func (m *Model) clampCursor() {
	m.cursor = min(max(m.cursor, 0), max(len(m.rows)-1, 0))
	h := max(m.tableRows(), 1)
	if m.cursor < m.offset {
		m.offset = m.cursor
	}
	if m.cursor >= m.offset+h {
		m.offset = m.cursor - h + 1
	}
	m.offset = min(max(m.offset, 0), max(len(m.rows)-h, 0))
}

// current returns the selected VM.
func (m *Model) current() (api.VM, bool) {
	if m.cursor < len(m.rows) {
		return m.rows[m.cursor], true
	}
	return api.VM{}, false
}

func (m *Model) fail(err error) {
	msg, hint, logs := errorParts(err)
	m.status = statusLine{text: msg, err: true, hint: hint, logs: logs}
}

func (m *Model) info(text string) { m.status = statusLine{text: text} }

// startSpinner starts the spinner's tick loop unless it already runs.
func (m *Model) startSpinner() tea.Cmd {
	if m.spinning {
		return nil
	}
	m.spinning = true
	return m.spin.Tick
}
