package daemon

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"banger/internal/buildinfo"
	"banger/internal/config"
)

// Main runs bangerd with its command-line arguments and returns the exit
// code. Everything it needs is built here and passed down explicitly.
func Main(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("bangerd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	logLevel := fs.String("log-level", "", "log level: debug, info, warn, error (default: the configured log_level)")
	version := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: bangerd [--log-level LEVEL]\n\nbangerd is banger's per-user daemon; `banger` starts it when needed.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *version {
		fmt.Fprintf(stderr, "bangerd %s\n", buildinfo.String())
		return 0
	}
	if err := run(ctx, *logLevel, stderr); err != nil {
		fmt.Fprintf(stderr, "bangerd: %v\n", err)
		return 1
	}
	return 0
}

func run(ctx context.Context, levelFlag string, stderr io.Writer) error {
	paths := config.DefaultPaths()
	cfg, err := config.Load(paths)
	if err != nil {
		return err
	}
	if levelFlag != "" {
		if err := cfg.Set("log_level", levelFlag, config.SourceFlag); err != nil {
			return err
		}
		if err := cfg.Validate(); err != nil {
			return err
		}
	}
	for _, dir := range []string{paths.StateDir, paths.DataDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("creating %s: %w", dir, err)
		}
	}
	logf, err := os.OpenFile(paths.DaemonLog(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening log %s: %w", paths.DaemonLog(), err)
	}
	defer logf.Close()
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewJSONHandler(logf, &slog.HandlerOptions{Level: level}))

	unlock, err := Lock(paths)
	if err != nil {
		return err
	}
	defer unlock()

	exe, _ := os.Executable()
	exe, _ = filepath.EvalSymlinks(exe)
	buildID, _ := buildinfo.ExecutableID(exe)
	dcfg := Config{Loaded: cfg, Version: buildinfo.String(), BuildID: buildID, Executable: exe, Service: ownUnit()}
	deps, closeDeps, err := HostDeps(ctx, cfg, log)
	if err != nil {
		log.Error("setting up host layers", "err", err)
		return fmt.Errorf("setting up host layers: %w (see %s)", err, paths.DaemonLog())
	}
	defer closeDeps()
	d, err := New(ctx, dcfg, deps)
	if err != nil {
		log.Error("opening state", "err", err)
		return err
	}
	defer d.Close()
	l, err := Listen(paths.Socket())
	if err != nil {
		return err
	}
	defer os.Remove(paths.Socket())
	return d.Serve(ctx, l)
}
