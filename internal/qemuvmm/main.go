package qemuvmm

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"banger/internal/buildinfo"
)

// Options is the parsed command line of banger-vmm-qemu.
type Options struct {
	APISock string
	ID      string
	// LogPath, Level, ShowLevel and ShowOrigin configure the VMM's own log
	// as Firecracker's flags of the same names do.
	LogPath    string
	Level      string
	ShowLevel  bool
	ShowOrigin bool
	// NoSeccomp and SeccompFilter are accepted for compatibility and
	// ignored: QEMU runs without a Firecracker seccomp filter.
	NoSeccomp     bool
	SeccompFilter string
	// QEMU is the emulator binary and Accel the acceleration choice.
	QEMU  string
	Accel string
	// Version asks for the version line instead of serving.
	Version bool
}

const usageText = `usage: banger-vmm-qemu --api-sock PATH [--id ID] [--qemu BIN] [--accel auto|kvm|tcg]
                       [--log-path PATH] [--level LEVEL] [--show-level] [--show-log-origin]
                       [--no-seccomp | --seccomp-filter PATH] | --version
Serves Firecracker's HTTP API on PATH and boots the guest with qemu-system-x86_64 -M microvm.`

// ParseArgs parses the command line (without the program name). It accepts
// the flags firecracker-go-sdk passes to Firecracker and rejects anything
// else with a clear error.
func ParseArgs(args []string) (Options, error) {
	var o Options
	fs := flag.NewFlagSet("banger-vmm-qemu", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.APISock, "api-sock", "", "path of the API unix socket (required)")
	fs.StringVar(&o.ID, "id", "anonymous-instance", "instance id")
	fs.StringVar(&o.LogPath, "log-path", "", "file or named pipe for the VMM's log")
	fs.StringVar(&o.Level, "level", "Info", "log level: Error, Warning, Info or Debug")
	fs.BoolVar(&o.ShowLevel, "show-level", false, "print the level in log lines")
	fs.BoolVar(&o.ShowOrigin, "show-log-origin", false, "print the source location in log lines")
	fs.BoolVar(&o.NoSeccomp, "no-seccomp", false, "accepted for compatibility; ignored")
	fs.StringVar(&o.SeccompFilter, "seccomp-filter", "", "accepted for compatibility; ignored")
	fs.StringVar(&o.QEMU, "qemu", "qemu-system-x86_64", "QEMU binary")
	fs.StringVar(&o.Accel, "accel", "auto", "acceleration: auto, kvm or tcg")
	fs.BoolVar(&o.Version, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, fmt.Errorf("parsing the command line: %s\n%s", strings.Replace(err.Error(), "flag provided but not defined", "unknown flag", 1), usageText)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("parsing the command line: unexpected argument %q\n%s", fs.Arg(0), usageText)
	}
	if o.Version {
		return o, nil
	}
	if o.APISock == "" {
		return o, fmt.Errorf("parsing the command line: --api-sock is required\n%s", usageText)
	}
	if _, err := parseLevel(o.Level); err != nil {
		return o, fmt.Errorf("parsing the command line: --level: %w", err)
	}
	switch o.Accel {
	case "auto", AccelKVM, AccelTCG:
	default:
		return o, fmt.Errorf("parsing the command line: --accel %q: want auto, kvm or tcg", o.Accel)
	}
	return o, nil
}

// VersionLine is what --version prints: "banger-vmm-qemu <version>
// (Firecracker API <api>)". An unstamped development build reports
// 0.0.0-dev so that the line always carries a version number.
func VersionLine(version string) string {
	v := strings.TrimPrefix(version, "v")
	if v == "" || v == "dev" {
		v = "0.0.0-dev"
	}
	return fmt.Sprintf("banger-vmm-qemu %s (Firecracker API %s)", v, Version)
}

// Main runs banger-vmm-qemu and returns its exit code. The guest console
// goes to stdout; the VMM's log goes to stderr unless --log-path or PUT
// /logger name a file.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := ParseArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, usageText)
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "banger-vmm-qemu:", err)
		return ExitUsage
	}
	if o.Version {
		fmt.Fprintln(stdout, VersionLine(buildinfo.Version))
		return 0
	}
	level, _ := parseLevel(o.Level)
	var logOut io.Writer = stderr
	if o.LogPath != "" {
		f, err := openSink(o.LogPath)
		if err != nil {
			fmt.Fprintln(stderr, "banger-vmm-qemu: opening the log:", err)
			return ExitUsage
		}
		defer f.Close()
		logOut = f
	}
	logger := slog.New(NewLogHandler(logOut, level, true, o.ShowOrigin))
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	v := New(Config{
		APISock:    o.APISock,
		ID:         o.ID,
		QEMU:       o.QEMU,
		Accel:      o.Accel,
		Console:    stdout,
		ConsoleIn:  stdin,
		QEMUStderr: nil,
	}, RealDeps(logger))
	return v.Serve(context.Background(), sig)
}
