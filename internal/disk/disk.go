package disk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"banger/internal/system"
)

// Deps are the Manager's dependencies.
type Deps struct {
	// Runner runs the filesystem tools. system.Plain() suffices for image
	// files the user owns; tests pass a *system.Fake.
	Runner system.InputRunner
	// Log receives debug lines about chosen methods and recoveries; nil discards.
	Log *slog.Logger
	// LookPath resolves a tool's absolute path (mkfs.ext4 and friends live in
	// /usr/sbin, often missing from a user's PATH). nil uses system.LookPath.
	LookPath func(name string) (string, error)
	// Scratch is a directory on a memory file system where Flatten stages
	// the layer's files when they are small enough (see stagingLimit);
	// empty uses /dev/shm when it exists.
	Scratch string
	// Templates is a directory where blank disks are made once per kind
	// and size and copied from (see blank); empty makes every disk anew.
	Templates string
}

// Manager makes and changes disk image files.
type Manager struct {
	run       system.InputRunner
	log       *slog.Logger
	lookPath  func(string) (string, error)
	scratch   string
	templates string
}

// New returns a Manager.
func New(deps Deps) *Manager {
	m := &Manager{run: deps.Runner, log: deps.Log, lookPath: deps.LookPath, scratch: deps.Scratch, templates: deps.Templates}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.lookPath == nil {
		m.lookPath = system.LookPath
	}
	if st, err := os.Stat("/dev/shm"); m.scratch == "" && err == nil && st.IsDir() {
		m.scratch = "/dev/shm"
	}
	return m
}

// Tools lists the programs the Manager runs, for preflight checks and the
// sudoers rules. They come with Debian's e2fsprogs package.
func Tools() []string { return []string{"mkfs.ext4", "e2fsck", "resize2fs", "debugfs"} }

// argv resolves the tool in argv[0] to an absolute path, so a non-root PATH
// without /usr/sbin still finds it and sudo rules can name exact commands.
func (m *Manager) argv(argv ...string) ([]string, error) {
	p, err := m.lookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("finding %s (install it with `apt-get install e2fsprogs`): %w", argv[0], err)
	}
	return append([]string{p}, argv[1:]...), nil
}

func (m *Manager) tool(ctx context.Context, argv ...string) ([]byte, error) {
	full, err := m.argv(argv...)
	if err != nil {
		return nil, err
	}
	return m.run.Output(ctx, full...)
}

// exitCode returns the exit status carried by a *system.CommandError, or -1.
func exitCode(err error) int {
	var ce *system.CommandError
	if errors.As(err, &ce) {
		return ce.ExitCode
	}
	return -1
}
