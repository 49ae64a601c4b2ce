package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"banger/internal/api"
	"banger/internal/buildinfo"
	"banger/internal/config"
)

// App is the state shared by every command of one CLI run.
type App struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer

	// NoAutostart disables starting (or restarting) bangerd on demand;
	// tests that serve a daemon in-process set it.
	NoAutostart bool
	// DaemonPath overrides where the bangerd binary is looked for.
	DaemonPath string

	paths  config.Paths
	cfg    *config.Loaded
	client *api.Client
}

// Execute runs the CLI with args and returns the process exit code.
func Execute(ctx context.Context, app *App, args []string) int {
	if app.Stdin == nil {
		app.Stdin = os.Stdin
	}
	if app.Stdout == nil {
		app.Stdout = os.Stdout
	}
	if app.Stderr == nil {
		app.Stderr = os.Stderr
	}
	root := app.newRootCommand()
	root.SetArgs(args)
	root.SetIn(app.Stdin)
	root.SetOut(app.Stdout)
	root.SetErr(app.Stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	printError(app.Stderr, err)
	return 1
}

// exitError ends the CLI with a code and no further message (the command
// already printed what happened).
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func printError(w io.Writer, err error) {
	var ae *api.Error
	if errors.As(err, &ae) {
		fmt.Fprintf(w, "banger: %s\n", ae.Message)
		if ae.Hint != "" {
			fmt.Fprintf(w, "hint: %s\n", ae.Hint)
		}
		for _, l := range ae.Logs {
			fmt.Fprintf(w, "log: %s\n", l)
		}
		return
	}
	fmt.Fprintf(w, "banger: %s\n", strings.TrimSpace(err.Error()))
}

func (app *App) newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "banger",
		Short: "Disposable, named, SSH-able Firecracker microVMs",
		Long: `banger turns Firecracker microVMs into disposable machines on your workstation.

  banger vm create dev        boot a VM named dev (it answers as dev.vm)
  banger vm ssh dev           get a shell in it
  banger vm rm dev            remove it and everything it used on the host

The CLI talks to your own daemon, bangerd, which it starts when needed
(BANGER_NO_AUTOSTART=1 uses only a daemon that already runs). Paths follow
the XDG base directories; see 'banger config show'.`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		Version:           buildinfo.String(),
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: false},
	}
	root.SetVersionTemplate("banger {{.Version}}\n")
	root.AddCommand(
		app.newVMCommand(),
		app.newImageCommand(),
		app.newDaemonCommand(),
		app.newConfigCommand(),
		app.newEventsCommand(),
		app.newDoctorCommand(),
		app.newSSHConfigCommand(),
		app.newDNSCommand(),
		app.newSystemCommand(),
		app.newRuntimeCommand(),
		app.newTUICommand(),
		app.newVersionCommand(),
		app.newInternalCommand(),
	)
	return root
}

// config loads the configuration once per run.
func (app *App) config() (*config.Loaded, error) {
	if app.cfg != nil {
		return app.cfg, nil
	}
	app.paths = config.DefaultPaths()
	cfg, err := config.Load(app.paths)
	if err != nil {
		return nil, err
	}
	app.cfg = cfg
	return cfg, nil
}

// usageError reports wrong arguments.
func usageError(cmd *cobra.Command, format string, args ...any) error {
	return &api.Error{Code: api.CodeInvalid, Message: fmt.Sprintf(format, args...), Hint: fmt.Sprintf("see `%s --help`", cmd.CommandPath())}
}
