package runtimebundle

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// BundleFile is the name of the description file at the top of a bundle.
const BundleFile = "bundle.json"

// FormatVersion is the bundle.json format this package writes and reads.
const FormatVersion = 1

// Bundle is the content of bundle.json. Paths are relative to the bundle
// directory, use forward slashes, and stay inside it.
type Bundle struct {
	Version       int    `json:"version"`
	Name          string `json:"name,omitempty"`
	KernelVersion string `json:"kernel_version,omitempty"`
	// VMM is the default VMM binary (firecracker, or banger-vmm-qemu).
	VMM     string `json:"vmm,omitempty"`
	Kernel  string `json:"kernel"`
	Vmlinux string `json:"vmlinux,omitempty"`
	Initrd  string `json:"initrd"`
	// Modules is a directory or archive of /lib/modules/<version>; empty
	// when the modules live only inside the root filesystem.
	Modules  string `json:"modules,omitempty"`
	Rootfs   string `json:"rootfs"`
	Manifest string `json:"manifest,omitempty"`
	// Helpers maps helper names to paths.
	Helpers map[string]string `json:"helpers,omitempty"`
	// Files maps every file of the bundle except bundle.json to its sha256.
	Files map[string]string `json:"files,omitempty"`
}

// Paths returns the named paths of b (not Files), keyed by role.
func (b Bundle) Paths() map[string]string {
	p := map[string]string{"kernel": b.Kernel, "initrd": b.Initrd, "rootfs": b.Rootfs}
	for k, v := range map[string]string{"vmm": b.VMM, "vmlinux": b.Vmlinux, "modules": b.Modules, "manifest": b.Manifest} {
		if v != "" {
			p[k] = v
		}
	}
	for k, v := range b.Helpers {
		p["helper "+k] = v
	}
	return p
}

// Validate checks that b is well formed: known version, required paths
// set, and every path relative and inside the bundle.
func (b Bundle) Validate() error {
	var errs []error
	if b.Version != FormatVersion {
		errs = append(errs, fmt.Errorf("bundle format version %d, this banger reads %d", b.Version, FormatVersion))
	}
	for _, role := range []string{"kernel", "initrd", "rootfs"} {
		if b.Paths()[role] == "" {
			errs = append(errs, fmt.Errorf("bundle.json names no %s", role))
		}
	}
	check := func(role, p string) {
		if err := checkRelPath(p); err != nil {
			errs = append(errs, fmt.Errorf("bundle %s path: %w", role, err))
		}
	}
	for role, p := range b.Paths() {
		if p != "" {
			check(role, p)
		}
	}
	for p := range b.Files {
		check("file", p)
	}
	return errors.Join(errs...)
}

func checkRelPath(p string) error {
	if p == "" || filepath.IsAbs(p) || strings.Contains(p, `\`) {
		return fmt.Errorf("%q is not a relative path", p)
	}
	c := filepath.Clean(p)
	if c == ".." || strings.HasPrefix(c, "../") || c == "." {
		return fmt.Errorf("%q leaves the bundle directory", p)
	}
	return nil
}

// Load reads and validates dir/bundle.json.
func Load(dir string) (Bundle, error) {
	var b Bundle
	data, err := os.ReadFile(filepath.Join(dir, BundleFile))
	if err != nil {
		return b, fmt.Errorf("reading runtime bundle: %w", err)
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return b, fmt.Errorf("parsing %s: %w", filepath.Join(dir, BundleFile), err)
	}
	if err := b.Validate(); err != nil {
		return b, fmt.Errorf("runtime bundle %s: %w", dir, err)
	}
	return b, nil
}

// Write writes b as dir/bundle.json.
func Write(dir string, b Bundle) error {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, BundleFile), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing bundle.json: %w", err)
	}
	return nil
}

// Checksums returns the sha256 of every regular file below dir except
// bundle.json, keyed by slash-separated relative path. Symlinks are not
// allowed in a bundle.
func Checksums(dir string) (map[string]string, error) {
	sums := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir() || rel == BundleFile || rel == installRecordFile:
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%s is not a regular file (bundles hold only files and directories)", rel)
		}
		sum, err := fileSHA256(p)
		if err != nil {
			return err
		}
		sums[rel] = sum
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("checksumming bundle %s: %w", dir, err)
	}
	return sums, nil
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Verify re-checks an installed bundle: bundle.json is valid, every path
// it names exists, and every file matches its recorded sha256. All
// problems are reported together.
func Verify(dir string) error {
	b, err := Load(dir)
	if err != nil {
		return err
	}
	var errs []error
	if len(b.Files) == 0 {
		errs = append(errs, errors.New("bundle.json records no checksums (package it with `banger runtime package`)"))
	}
	for role, p := range b.Paths() {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", role, p, err))
		}
	}
	names := make([]string, 0, len(b.Files))
	for n := range b.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		got, err := fileSHA256(filepath.Join(dir, n))
		if err != nil {
			errs = append(errs, fmt.Errorf("checking %s: %w", n, err))
			continue
		}
		if got != b.Files[n] {
			errs = append(errs, fmt.Errorf("%s: sha256 %s, bundle.json records %s", n, got, b.Files[n]))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("verifying runtime bundle %s (reinstall it with `banger runtime install`): %w", dir, errors.Join(errs...))
	}
	return nil
}

// legacyNames are the files of a bundle made before bundle.json, which
// LoadOrInfer recognises by name.
var legacyNames = struct{ kernel, vmlinux, initrd, rootfs, manifest []string }{
	kernel:   []string{"vmlinuz", "bzImage"},
	vmlinux:  []string{"vmlinux"},
	initrd:   []string{"initrd.img", "initrd"},
	rootfs:   []string{"rootfs.ext4", "rootfs.img"},
	manifest: []string{"manifest.txt"},
}

// LoadOrInfer reads dir/bundle.json, or, for a bundle directory of the
// older layout without one, describes the files it holds by their names
// (a kernel, an initrd and a root file system at least).
func LoadOrInfer(dir string) (Bundle, error) {
	if _, err := os.Stat(filepath.Join(dir, BundleFile)); err == nil {
		return Load(dir)
	}
	find := func(names []string) string {
		for _, n := range names {
			if st, err := os.Stat(filepath.Join(dir, n)); err == nil && st.Mode().IsRegular() {
				return n
			}
		}
		return ""
	}
	b := Bundle{Version: FormatVersion, Name: filepath.Base(dir), Kernel: find(legacyNames.kernel), Vmlinux: find(legacyNames.vmlinux),
		Initrd: find(legacyNames.initrd), Rootfs: find(legacyNames.rootfs), Manifest: find(legacyNames.manifest)}
	for _, vmm := range []string{"firecracker", "banger-vmm-qemu"} {
		if st, err := os.Stat(filepath.Join(dir, vmm)); err == nil && st.Mode()&0o111 != 0 {
			b.VMM = vmm
			break
		}
	}
	if err := b.Validate(); err != nil {
		return b, fmt.Errorf("runtime bundle %s has no %s and its files are not the older layout's (vmlinuz, initrd.img, rootfs.ext4): %w", dir, BundleFile, err)
	}
	return b, nil
}

// Abs returns the bundle's path for role p (a path relative to dir), or ""
// when it is empty.
func Abs(dir, p string) string {
	if p == "" {
		return ""
	}
	return filepath.Join(dir, filepath.FromSlash(p))
}
