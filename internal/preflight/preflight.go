package preflight

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"

	"banger/internal/api"
	"banger/internal/system"
)

// Config names what the checks look for. The functions are injectable for
// tests; nil means the real ones.
type Config struct {
	// VMMBinary is the resolved VMM program and VMMKind "firecracker" or "qemu".
	VMMBinary string
	VMMKind   string
	// VMMReason says why "auto" picked the VMM it did (for the doctor).
	VMMReason string
	// DataDir is where disks and images live (reflink and free space).
	DataDir string

	LookPath func(string) (string, error)
	Stat     func(string) (os.FileInfo, error)
	Euid     func() int
	// Version asks a VMM binary for its version.
	Version func(ctx context.Context, binary string) (string, error)
	// Output runs a command and returns its output (tool versions).
	Output func(ctx context.Context, argv ...string) ([]byte, error)
	// ReadFile reads /proc and /sys files.
	ReadFile func(string) ([]byte, error)
	// Reflink reports whether a directory's file system clones files.
	Reflink func(dir string) (bool, error)
	// FreeBytes reports the space left for the user in a directory.
	FreeBytes func(dir string) (int64, error)
	// KVM reports why KVM cannot run a stock guest, or nil.
	KVM func() error
	// Setup reports whether the daemon may change its share of the host's
	// networking (root, or a user with `sudo banger system setup` done);
	// fresh asks again instead of trusting an earlier answer. Nil means
	// only root may.
	Setup func(ctx context.Context, fresh bool) error
	// Optional names operations this host can do without, and why (a
	// runtime bundle's image stands in for image bootstrap): the doctor
	// warns instead of failing when only they are blocked.
	Optional map[Op]string
}

// Checker runs the checks.
type Checker struct {
	cfg Config
	// fresh makes checks ask again instead of trusting a cached answer
	// (the report).
	fresh bool
}

// New returns a Checker.
func New(cfg Config) *Checker {
	if cfg.LookPath == nil {
		cfg.LookPath = system.LookPath
	}
	if cfg.Stat == nil {
		cfg.Stat = os.Stat
	}
	if cfg.Euid == nil {
		cfg.Euid = os.Geteuid
	}
	if cfg.Output == nil {
		cfg.Output = system.Plain().Output
	}
	if cfg.ReadFile == nil {
		cfg.ReadFile = os.ReadFile
	}
	if cfg.FreeBytes == nil {
		cfg.FreeBytes = freeBytes
	}
	if cfg.KVM == nil {
		cfg.KVM = KVMUsable
	}
	return &Checker{cfg: cfg}
}

func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("reading free space of %s: %w", dir, err)
	}
	return int64(st.Bavail) * st.Bsize, nil
}

// Problem is one failed check with its fix.
type Problem struct {
	What string `json:"what"`
	Fix  string `json:"fix"`
}

// Problems lists what the operations need and the host lacks, each
// problem once.
func (c *Checker) Problems(ctx context.Context, ops ...Op) []Problem {
	var out []Problem
	seen := map[string]bool{}
	for _, op := range ops {
		for _, ck := range needs[op].checks {
			if seen[ck.name] {
				continue
			}
			seen[ck.name] = true
			if r := ck.run(c, ctx); r.Status == api.CheckFail {
				out = append(out, Problem{What: r.Detail, Fix: r.Fix})
			}
		}
	}
	return out
}

// Check implements the daemon's preflight: nil, or one precondition error
// naming the first operation and listing every problem and its fix.
func (c *Checker) Check(ctx context.Context, ops ...Op) error {
	ps := c.Problems(ctx, ops...)
	if len(ps) == 0 {
		return nil
	}
	var what, fixes []string
	for _, p := range ps {
		what = append(what, p.What)
		fixes = append(fixes, p.Fix)
	}
	return &api.Error{Code: api.CodePrecondition,
		Message: fmt.Sprintf("cannot %s: %s", ops[0], strings.Join(what, "; ")),
		Hint:    strings.Join(fixes, "; ") + " (`banger doctor` checks everything)"}
}
