package cli

import (
	"context"
	"fmt"
	"io"
	"os/exec"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/spf13/cobra"

	"banger/internal/api"
	"banger/internal/tui"
)

func (app *App) newTUICommand() *cobra.Command {
	var user string
	cmd := &cobra.Command{
		Use:   "tui",
		Short: "Browse and operate VMs in a full-screen terminal UI",
		Long: `Open a full-screen terminal UI over bangerd: a live table of VMs (state,
address, live CPU and memory, uptime) with a detail pane that follows the
selected VM's console, an images view, and keys for every action (start,
stop, restart, kill, delete, ssh, create, resize). Press ? for all keys and
q to quit. NO_COLOR turns colors off.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runTUI(cmd.Context(), user)
		},
	}
	cmd.Flags().StringVarP(&user, "user", "u", "root", "user that ssh (key c) logs in as")
	return cmd
}

func (app *App) runTUI(ctx context.Context, user string) error {
	if !isTerminal(app.Stdout) {
		return &api.Error{Code: api.CodeInvalid, Message: "banger tui needs a terminal", Hint: "for scripts use `banger vm list -o json` or `banger events -o json`"}
	}
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	cfg := app.cfg
	return tui.Run(ctx, tui.Config{
		Client: c,
		SSH:    func(v api.VM) tea.ExecCommand { return app.sshCommand(v, user) },
		Color:  colorEnabled(app.Stdout),
		Output: app.Stdout,
		Defaults: tui.Defaults{
			Image:  cfg.DefaultImage,
			CPUs:   cfg.DefaultCPUs,
			Memory: cfg.DefaultMemory,
			Disk:   cfg.DefaultDisk,
		},
	}, tea.WithInput(app.Stdin), tea.WithOutput(app.Stdout))
}

// sshExec is the SSH hand-off of `banger vm ssh` as a tea.ExecCommand: the
// TUI suspends, ssh owns the terminal, and the TUI resumes when it exits.
type sshExec struct {
	argv []string
	name string
	cmd  *exec.Cmd
	err  error
}

func (app *App) sshCommand(v api.VM, user string) tea.ExecCommand {
	s := &sshExec{name: v.Name, argv: sshArgv(app.cfg.Paths, v, user, nil)}
	bin, err := exec.LookPath("ssh")
	if err != nil {
		s.err = &api.Error{Code: api.CodePrecondition, Message: "the OpenSSH client (ssh) is not installed", Hint: "install it with `sudo apt-get install openssh-client`"}
		return s
	}
	s.cmd = exec.Command(bin, s.argv[1:]...)
	return s
}

// Run runs ssh and reports connection failures (ssh's own status 255);
// other exit codes belong to the remote shell and are not errors.
func (s *sshExec) Run() error {
	if s.err != nil {
		return s.err
	}
	err := s.cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		if ee.ExitCode() == 255 {
			return &api.Error{Code: api.CodeUnavailable, Message: fmt.Sprintf("ssh to %s failed", s.name), Hint: fmt.Sprintf("is the guest up? see its console in the detail pane, or run `banger vm ssh %s` for ssh's own message", s.name)}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("running ssh: %w", err)
	}
	return nil
}

func (s *sshExec) SetStdin(r io.Reader) {
	if s.cmd != nil {
		s.cmd.Stdin = r
	}
}

func (s *sshExec) SetStdout(w io.Writer) {
	if s.cmd != nil {
		s.cmd.Stdout = w
	}
}

func (s *sshExec) SetStderr(w io.Writer) {
	if s.cmd != nil {
		s.cmd.Stderr = w
	}
}
