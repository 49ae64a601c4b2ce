package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"banger/internal/allocation"
	"banger/internal/api"
	"banger/internal/buildinfo"
	"banger/internal/system"
)

// startTimeout bounds how long the CLI waits for a new bangerd to answer.
const startTimeout = 15 * time.Second

// connect returns a client for a running daemon, starting bangerd when
// none answers and restarting it when its binary was rebuilt.
func (app *App) connect(ctx context.Context) (*api.Client, error) {
	if app.client != nil {
		return app.client, nil
	}
	cfg, err := app.config()
	if err != nil {
		return nil, err
	}
	c := api.NewClient(cfg.Paths.Socket())
	if app.NoAutostart || os.Getenv("BANGER_NO_AUTOSTART") != "" {
		app.client = c
		return c, nil
	}
	// A daemon that dies under a request that changes nothing is started
	// again and the request sent once more.
	c.Reconnect = func(ctx context.Context) error { return app.startDaemon(ctx, c) }
	st, err := c.Status(ctx)
	switch {
	case err == nil:
		if stale, why := app.staleDaemon(st); stale {
			fmt.Fprintf(app.Stderr, "banger: restarting bangerd (%s); running VMs are not affected\n", why)
			if err := app.restartDaemon(ctx, c); err != nil {
				return nil, err
			}
		}
	case api.IsDialError(err):
		if err := app.startDaemon(ctx, c); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	app.client = c
	return c, nil
}

// daemonBinary finds the bangerd to start: beside this executable first,
// then on PATH.
func (app *App) daemonBinary() (string, error) {
	if app.DaemonPath != "" {
		return app.DaemonPath, nil
	}
	if p := os.Getenv("BANGER_DAEMON"); p != "" {
		return p, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "bangerd")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("bangerd")
	if err != nil {
		return "", errors.New("finding bangerd: it is neither beside banger nor on PATH; install both with `make install`")
	}
	return p, nil
}

// staleDaemon reports whether the running daemon is a different build than
// the bangerd this CLI would start, or started before its user was set up
// (it then has no network allocation, and one exists now).
func (app *App) staleDaemon(st api.Status) (bool, string) {
	if st.Allocation == "" && os.Geteuid() != 0 {
		if u, err := user.Current(); err == nil {
			if _, err := os.Stat(filepath.Join(allocation.DefaultDir, u.Username+".json")); err == nil {
				return true, "banger was set up for " + u.Username + " after it started"
			}
		}
	}
	if st.Service == "" && serviceEnabled() {
		return true, "its systemd user unit is enabled; the service takes over"
	}
	bin, err := app.daemonBinary()
	if err != nil {
		return false, ""
	}
	id, err := buildinfo.ExecutableID(bin)
	if err != nil || st.BuildID == "" || st.BuildID == id {
		return false, ""
	}
	return true, fmt.Sprintf("%s was rebuilt", bin)
}

// startDaemon starts bangerd and waits until it answers: through systemd
// when the user enabled its unit (`systemctl --user enable bangerd`), else
// detached, in its own session, with its output appended to the daemon log.
func (app *App) startDaemon(ctx context.Context, c *api.Client) error {
	// Its probes must not start a daemon themselves (see restartDaemon).
	ctx = api.WithoutReconnect(ctx)
	if serviceEnabled() {
		err := systemctlUser(ctx, "start", serviceUnit)
		if err == nil {
			return waitAnswer(ctx, c, 0, "see `journalctl --user -u bangerd`")
		}
		fmt.Fprintf(app.Stderr, "banger: %v; starting bangerd directly\n", err)
	}
	bin, err := app.daemonBinary()
	if err != nil {
		return err
	}
	logPath := app.cfg.Paths.DaemonLog()
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening daemon log %s: %w", logPath, err)
	}
	defer logf.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devnull.Close()
	cmd := exec.Command(bin)
	cmd.Stdin = devnull
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			// Another CLI may have started a daemon at the same time; the
			// loser exits, and the winner answers.
			if _, serr := c.Status(ctx); serr == nil {
				return nil
			}
			return fmt.Errorf("bangerd exited at start (%v):\n%s\nfull log: %s", err, tail(logPath, 8), logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if _, err := c.Status(ctx); err == nil {
			return nil
		}
	}
	return fmt.Errorf("bangerd did not answer on %s within %s; see %s", c.Socket, startTimeout, logPath)
}

// restartDaemon asks the daemon to exit, waits for its socket to stop
// answering, and starts it again; a daemon systemd runs as a service is
// restarted by systemd, so the service stays in charge of it.
func (app *App) restartDaemon(ctx context.Context, c *api.Client) error {
	// A probe that meets the old daemon closing its connections must see
	// it go: through c's Reconnect it would start the new daemon early,
	// and the wait for the old one to go would then never end.
	ctx = api.WithoutReconnect(ctx)
	st, err := c.Status(ctx)
	if err == nil && st.Service != "" {
		if err := systemctlUser(ctx, "restart", st.Service); err != nil {
			return err
		}
		return waitAnswer(ctx, c, st.PID, "see `journalctl --user -u "+st.Service+"`")
	}
	pid := 0 // unknown: the daemon did not answer
	if err == nil {
		pid = st.PID
	}
	if err := c.Shutdown(ctx); err != nil && !api.IsDialError(err) {
		return fmt.Errorf("stopping bangerd: %w", err)
	}
	if err := waitGone(ctx, c, pid); err != nil {
		return err
	}
	return app.startDaemon(ctx, c)
}

// waitGone waits until the daemon no longer answers and its process, pid
// (0: unknown), has exited: it holds the one-daemon-per-user lock until
// then, and a new daemon started earlier would find it held.
func waitGone(ctx context.Context, c *api.Client, pid int) error {
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		if _, err := c.Status(ctx); api.IsDialError(err) && !system.ProcessAlive(pid, 0) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("bangerd did not stop within %s", startTimeout)
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// serviceUnit is the systemd user unit the package installs for bangerd.
const serviceUnit = "bangerd.service"

// serviceEnabled reports whether a systemd user manager runs for this
// session (it listens on $XDG_RUNTIME_DIR/systemd/private) and the user
// enabled bangerd's unit: `systemctl --user enable bangerd` links it into
// $XDG_CONFIG_HOME/systemd/user/default.target.wants. Two stats, so every
// command can afford the check.
func serviceEnabled() bool {
	run := os.Getenv("XDG_RUNTIME_DIR")
	if run == "" {
		return false
	}
	if _, err := os.Stat(filepath.Join(run, "systemd", "private")); err != nil {
		return false
	}
	conf := os.Getenv("XDG_CONFIG_HOME")
	if conf == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return false
		}
		conf = filepath.Join(home, ".config")
	}
	_, err := os.Stat(filepath.Join(conf, "systemd", "user", "default.target.wants", serviceUnit))
	return err == nil
}

// systemctlUser runs `systemctl --user VERB UNIT`.
func systemctlUser(ctx context.Context, verb, unit string) error {
	out, err := exec.CommandContext(ctx, "systemctl", "--user", verb, unit).CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl --user %s %s: %v: %s (see `systemctl --user status %s`)", verb, unit, err, strings.TrimSpace(string(out)), unit)
	}
	return nil
}

// waitAnswer waits until a daemon other than oldPID answers on c's socket.
func waitAnswer(ctx context.Context, c *api.Client, oldPID int, where string) error {
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		if st, err := c.Status(ctx); err == nil && st.PID != oldPID {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("bangerd did not answer on %s within %s; %s", c.Socket, startTimeout, where)
}
