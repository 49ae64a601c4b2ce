package bootstrap

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Package is one installed Debian package.
type Package struct {
	Name         string
	Version      string
	Architecture string
}

// ParseDpkgStatus returns the installed packages recorded in a dpkg status
// file (/var/lib/dpkg/status), sorted by name. Packages that are not in
// state "install ok installed" are left out.
func ParseDpkgStatus(data []byte) ([]Package, error) {
	var pkgs []Package
	var cur Package
	var status string
	var errs []error
	flush := func() {
		if cur.Name != "" && strings.HasSuffix(status, " installed") && strings.HasPrefix(status, "install ") {
			// The manifest has one "name version architecture" line per
			// package: each field must be one word.
			for _, f := range [][2]string{{"Version", cur.Version}, {"Architecture", cur.Architecture}} {
				if len(strings.Fields(f[1])) != 1 {
					errs = append(errs, fmt.Errorf("package %s: field %s is %q, want one word", cur.Name, f[0], f[1]))
				}
			}
			if len(strings.Fields(cur.Name)) != 1 {
				errs = append(errs, fmt.Errorf("package name %q is not one word", cur.Name))
			}
			pkgs = append(pkgs, cur)
		}
		cur, status = Package{}, ""
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // continuation of a multi-line field
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("parsing dpkg status: line %q has no field name", line)
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Package":
			cur.Name = v
		case "Version":
			cur.Version = v
		case "Architecture":
			cur.Architecture = v
		case "Status":
			status = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading dpkg status: %w", err)
	}
	flush()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("parsing dpkg status (the guest's dpkg database may be damaged; `dpkg --audit` in the guest says more): %w", err)
	}
	sortPackages(pkgs)
	return pkgs, nil
}

func sortPackages(p []Package) {
	sort.Slice(p, func(i, j int) bool {
		if p[i].Name != p[j].Name {
			return p[i].Name < p[j].Name
		}
		return p[i].Architecture < p[j].Architecture
	})
}

// RenderManifest returns the manifest text for pkgs: one
// "name version architecture" line each, sorted by name.
func RenderManifest(pkgs []Package) []byte {
	p := append([]Package(nil), pkgs...)
	sortPackages(p)
	var b bytes.Buffer
	for _, pk := range p {
		fmt.Fprintf(&b, "%s %s %s\n", pk.Name, pk.Version, pk.Architecture)
	}
	return b.Bytes()
}

// ParseManifest parses manifest text written by RenderManifest.
func ParseManifest(data []byte) ([]Package, error) {
	var pkgs []Package
	for i, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("parsing manifest line %d %q: want \"name version architecture\"", i+1, line)
		}
		pkgs = append(pkgs, Package{Name: f[0], Version: f[1], Architecture: f[2]})
	}
	return pkgs, nil
}

// SHA256Hex returns the hex sha256 of data.
func SHA256Hex(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}
