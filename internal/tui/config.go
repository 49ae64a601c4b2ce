package tui

import (
	"context"
	"io"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"banger/internal/api"
)

// Client is the part of the daemon API the TUI uses; *api.Client
// implements it.
type Client interface {
	VMs(ctx context.Context, all bool) ([]api.VM, error)
	CreateVM(ctx context.Context, req api.CreateVMRequest, onProgress func(api.Progress)) (api.VM, []string, error)
	StartVM(ctx context.Context, name string, waitSSH bool, onProgress func(api.Progress)) (api.VM, error)
	StopVM(ctx context.Context, name string, req api.StopVMRequest, onProgress func(api.Progress)) (api.VM, error)
	KillVM(ctx context.Context, name string) (api.VM, error)
	PauseVM(ctx context.Context, name string) (api.VM, error)
	ResumeVM(ctx context.Context, name string) (api.VM, error)
	SuspendVM(ctx context.Context, name string, onProgress func(api.Progress)) (api.VM, error)
	RestartVM(ctx context.Context, name string, waitSSH bool, onProgress func(api.Progress)) (api.VM, error)
	ResizeVM(ctx context.Context, name string, req api.ResizeVMRequest, onProgress func(api.Progress)) (api.VM, error)
	RemoveVM(ctx context.Context, name string, req api.RemoveVMRequest) error
	VMLogsTail(ctx context.Context, name, source string, follow bool, tail int, w io.Writer) error
	Exec(ctx context.Context, name string, req api.ExecRequest, stdio api.ExecIO) (int, error)
	Images(ctx context.Context) ([]api.Image, error)
	RemoveImage(ctx context.Context, name string) error
	Events(ctx context.Context, fn func(api.Event) error) error
}

var _ Client = (*api.Client)(nil)

// Defaults prefill the create form; empty fields leave the choice to the
// daemon's configured defaults.
type Defaults struct {
	Image  string
	CPUs   int
	Memory string
	Disk   string
}

// Config is everything the TUI needs from its caller.
type Config struct {
	// Client talks to the daemon.
	Client Client
	// SSH builds the interactive SSH hand-off for a running VM. The TUI
	// suspends itself, runs the command on the terminal and resumes. Nil
	// disables the action.
	SSH func(api.VM) tea.ExecCommand
	// Color enables colors; callers turn it off for NO_COLOR and dumb
	// terminals. Without color the UI is plain text.
	Color bool
	// Output is where the program draws; it is only used to detect the
	// color profile. Nil means standard output.
	Output io.Writer
	// Now is the clock for uptimes; nil means time.Now. Tests fix it.
	Now func() time.Time
	// Refresh is how often the VM list is re-fetched for live CPU% and RSS;
	// zero means every two seconds, negative turns it off. State changes do
	// not wait for it: they arrive on the event stream.
	Refresh time.Duration
	// Defaults prefill the create form.
	Defaults Defaults
	// LogLines bounds the console tail kept for the selected VM; zero
	// means 200.
	LogLines int
}

const defaultRefresh = 2 * time.Second

// Run shows the TUI on the terminal until the user quits or ctx ends, and
// restores the terminal before returning.
func Run(ctx context.Context, cfg Config, opts ...tea.ProgramOption) error {
	m := New(ctx, cfg)
	defer m.Close()
	opts = append([]tea.ProgramOption{tea.WithAltScreen(), tea.WithContext(ctx)}, opts...)
	_, err := tea.NewProgram(m, opts...).Run()
	if err != nil && ctx.Err() != nil {
		return nil
	}
	return err
}
