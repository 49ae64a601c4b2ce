package firecracker

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Kind says which VMM a binary is.
type Kind string

// The VMMs banger drives.
const (
	KindFirecracker Kind = "firecracker"
	KindQEMU        Kind = "banger-vmm-qemu"
)

// ErrNotVMM says that a binary's `--version` output names neither
// Firecracker nor banger-vmm-qemu.
var ErrNotVMM = errors.New("not a Firecracker-compatible vmm")

// VersionInfo is what `<vmm> --version` tells about a VMM binary.
type VersionInfo struct {
	Kind    Kind
	Version string // without a leading "v", e.g. "1.7.0"
}

func (v VersionInfo) String() string { return string(v.Kind) + " " + v.Version }

var versionPattern = regexp.MustCompile(`\bv?(\d+\.\d+(?:\.\d+)?(?:[-+][0-9A-Za-z.-]+)?)\b`)

// ParseVersion parses `--version` output. Firecracker prints
// "Firecracker v1.7.0" (older releases add lines about snapshot versions);
// banger-vmm-qemu prints "banger-vmm-qemu <version>" on its first line.
func ParseVersion(out []byte) (VersionInfo, error) {
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		var kind Kind
		switch lower := strings.ToLower(line); {
		case strings.HasPrefix(lower, "banger-vmm-qemu"):
			kind = KindQEMU
		case strings.HasPrefix(lower, "firecracker"):
			kind = KindFirecracker
		default:
			return VersionInfo{}, fmt.Errorf("parsing vmm version %q: %w", truncate(line, 80), ErrNotVMM)
		}
		m := versionPattern.FindStringSubmatch(line)
		if m == nil {
			return VersionInfo{}, fmt.Errorf("parsing vmm version %q: no version number", truncate(line, 80))
		}
		return VersionInfo{Kind: kind, Version: m[1]}, nil
	}
	return VersionInfo{}, fmt.Errorf("parsing vmm version: empty output: %w", ErrNotVMM)
}

// Version runs `<binary> --version` and tells which VMM the binary is and
// its version, for `banger doctor` and preflight. A binary that is neither
// Firecracker nor banger-vmm-qemu gives an error wrapping ErrNotVMM.
func (d *Driver) Version(ctx context.Context, binary string) (VersionInfo, error) {
	bin, err := resolveBinary(binary)
	if err != nil {
		return VersionInfo{}, err
	}
	out, err := d.plain.Output(ctx, bin, "--version")
	if err != nil {
		return VersionInfo{}, fmt.Errorf("asking %s for its version: %w", bin, err)
	}
	v, err := ParseVersion(out)
	if err != nil {
		return VersionInfo{}, fmt.Errorf("checking vmm binary %s: %w", bin, err)
	}
	return v, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
