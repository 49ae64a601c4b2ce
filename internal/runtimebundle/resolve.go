package runtimebundle

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Source says where a bundle directory was found.
type Source string

// The places a bundle is looked for, in order.
const (
	FromConfig    Source = "config"
	FromCheckout  Source = "checkout"
	FromInstalled Source = "installed"
)

// Locator holds what Resolve needs to find the bundle. Callers fill it
// from the config file, os.Getwd and os.Executable.
type Locator struct {
	// Override is the config key runtime_bundle; when set it is the only
	// candidate.
	Override string
	// WorkDir is the current directory; a banger source checkout containing
	// it (a go.mod declaring `module banger`) has its bundle in ./runtime.
	WorkDir string
	// Executable is the running binary; an installed banger finds its
	// bundle in ../lib/banger relative to the binary's directory.
	Executable string
}

// Candidate is one place a bundle may be.
type Candidate struct {
	Source Source
	Dir    string
}

// Candidates lists the bundle locations for l, in resolution order.
func (l Locator) Candidates() []Candidate {
	if l.Override != "" {
		return []Candidate{{FromConfig, l.Override}}
	}
	var out []Candidate
	if root, ok := checkoutRoot(l.WorkDir); ok {
		out = append(out, Candidate{FromCheckout, filepath.Join(root, "runtime")})
	}
	if l.Executable != "" {
		exe := l.Executable
		if r, err := filepath.EvalSymlinks(exe); err == nil {
			exe = r
		}
		out = append(out, Candidate{FromInstalled, filepath.Join(filepath.Dir(exe), "..", "lib", "banger")})
	}
	for i := range out {
		out[i].Dir = filepath.Clean(out[i].Dir)
	}
	return out
}

// checkoutRoot finds the banger source checkout containing dir.
func checkoutRoot(dir string) (string, bool) {
	if dir == "" {
		return "", false
	}
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if data, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil {
			return d, modulePath(data) == "banger"
		}
		if d == filepath.Dir(d) {
			return "", false
		}
	}
}

func modulePath(gomod []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

// ErrNoBundle is returned by Resolve when no candidate holds a bundle.
var ErrNoBundle = errors.New("no runtime bundle found")

// Resolve returns the first candidate directory that holds a bundle.json.
// When none does, the error lists where it looked and how to get one.
func Resolve(l Locator) (Candidate, error) {
	cands := l.Candidates()
	var tried []string
	for _, c := range cands {
		if _, err := os.Stat(filepath.Join(c.Dir, BundleFile)); err == nil {
			return c, nil
		}
		tried = append(tried, fmt.Sprintf("%s (%s)", c.Dir, c.Source))
	}
	return Candidate{}, fmt.Errorf("%w: looked in %s; %s", ErrNoBundle, strings.Join(tried, ", "), NoBundleHint)
}

// NoBundleHint tells a user how to get a runtime bundle. The README,
// `make help` and docs/runtime-bundle.md say the same (a test checks).
const NoBundleHint = "build one with `make runtime-bundle`, or install one with `banger runtime install --manifest FILE`"
