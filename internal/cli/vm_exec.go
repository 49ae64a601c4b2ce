package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"

	"banger/internal/api"
)

type vmExecOptions struct {
	tty     bool
	env     []string
	workdir string
	user    string
	timeout time.Duration
}

func (app *App) newVMExecCommand() *cobra.Command {
	var o vmExecOptions
	cmd := &cobra.Command{
		Use:   "exec NAME [--] COMMAND [ARGS...]",
		Short: "Run a command in a VM, each argument intact, with its stdin, stdout, stderr and exit status",
		Long: `Run exactly COMMAND ARGS... in the VM, as docker exec does: every argument
arrives as it was given (spaces, quotes, $, * and newlines included; no shell
re-parses them; use sh -c '...' for shell syntax), stdin is passed through,
stdout and stderr stay apart, and banger exits with the command's status
(128+N when a signal N ended it). Interrupts (Ctrl-C, SIGTERM) are passed on
to the command. A VM that is still booting is waited for, up to
--wait-timeout; a stopped one is an error that says how to start it.

The command runs through bangerd, over the one SSH connection it keeps to
the VM, so it starts without a new SSH handshake; any client of the API can
do the same (POST /v1/vms/NAME/exec, see docs/guest-access.md).`,
		Example: `  banger vm exec dev -- uname -a
  banger vm exec dev -- sh -c 'echo keep > /work/f'
  tar c src | banger vm exec dev -- tar x -C /work
  banger vm exec -t dev -- htop
  banger vm exec dev --user app --workdir /srv --env MODE=dev -- ./run`,
		Args:              cobra.MinimumNArgs(2),
		ValidArgsFunction: app.completeVMNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runVMExec(cmd.Context(), args[0], commandArgv(args[1:]), o)
		},
	}
	f := cmd.Flags()
	// Flags end at NAME: everything after it is the command's.
	f.SetInterspersed(false)
	f.BoolVarP(&o.tty, "tty", "t", false, "give the command a terminal (stdin must be one; stdout and stderr then merge)")
	f.StringArrayVarP(&o.env, "env", "e", nil, "set an environment variable, KEY=VALUE (repeatable)")
	f.StringVarP(&o.workdir, "workdir", "w", "", "working directory (default: the user's home)")
	f.StringVarP(&o.user, "user", "u", "", "run as this guest user (default: root)")
	f.DurationVar(&o.timeout, "wait-timeout", 3*time.Minute, "how long to wait for a VM that is still booting")
	return cmd
}

// commandArgv drops the "--" that may separate NAME from the command (flag
// parsing stops at NAME, so cobra leaves it in).
func commandArgv(args []string) []string {
	if len(args) > 0 && args[0] == "--" {
		return args[1:]
	}
	return args
}

func (app *App) runVMExec(ctx context.Context, name string, argv []string, o vmExecOptions) error {
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	req := api.ExecRequest{Argv: argv, Env: o.env, Workdir: o.workdir, User: o.user, TTY: o.tty,
		WaitSeconds: int(o.timeout.Round(time.Second) / time.Second)}
	stdio := api.ExecIO{Stdin: app.Stdin, Stdout: app.Stdout, Stderr: app.Stderr}
	if o.tty {
		restore, err := app.rawTerminal(&req, &stdio)
		if err != nil {
			return err
		}
		defer restore()
	} else {
		stop := forwardSignals(&stdio)
		defer stop()
	}
	code, err := c.Exec(ctx, name, req, stdio)
	if err != nil {
		return err
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}

// forwardSignals passes the interrupts banger receives on to the command.
func forwardSignals(stdio *api.ExecIO) (stop func()) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	out := make(chan string, 4)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				out <- signalName(s)
			case <-done:
				return
			}
		}
	}()
	stdio.Signal = out
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}

func signalName(s os.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "INT"
	case syscall.SIGHUP:
		return "HUP"
	case syscall.SIGQUIT:
		return "QUIT"
	}
	return "TERM"
}

// rawTerminal puts banger's terminal into raw mode for a TTY command (keys
// such as Ctrl-C then reach the guest as they are), sends the window size
// now and on every change, and returns the function that restores it.
func (app *App) rawTerminal(req *api.ExecRequest, stdio *api.ExecIO) (func(), error) {
	in, ok := app.Stdin.(*os.File)
	if !ok || !term.IsTerminal(in.Fd()) {
		return nil, &api.Error{Code: api.CodeInvalid, Message: "-t needs a terminal on stdin", Hint: "leave -t out to pass stdin as a stream"}
	}
	req.Term = os.Getenv("TERM")
	size := func() api.WindowSize {
		w, h, err := term.GetSize(in.Fd())
		if err != nil {
			return api.WindowSize{Rows: 24, Cols: 80}
		}
		return api.WindowSize{Rows: uint16(h), Cols: uint16(w)}
	}
	req.Size = size()
	state, err := term.MakeRaw(in.Fd())
	if err != nil {
		return nil, fmt.Errorf("putting the terminal into raw mode: %w", err)
	}
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	resize := make(chan api.WindowSize, 1)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-winch:
				select {
				case resize <- size():
				default:
				}
			case <-done:
				return
			}
		}
	}()
	stdio.Resize = resize
	return func() {
		signal.Stop(winch)
		close(done)
		_ = term.Restore(in.Fd(), state)
	}, nil
}
