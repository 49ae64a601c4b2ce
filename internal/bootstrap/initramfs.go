package bootstrap

import (
	"bufio"
	"bytes"
	_ "embed"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"text/template"

	"github.com/klauspost/compress/gzip"
)

// DefaultModules returns the kernel modules the initramfs loads, by module
// name: the virtio transport, block and network drivers, the vsock
// transport and the virtio entropy source. Dependencies are added by
// ResolveModules; modules built into the kernel are skipped.
func DefaultModules() []string {
	return []string{
		"virtio_ring", "virtio", "virtio_mmio", "virtio_blk",
		"failover", "net_failover", "virtio_net",
		"vsock", "vmw_vsock_virtio_transport_common", "vmw_vsock_virtio_transport",
		"virtio_rng",
		"overlay",
	}
}

// ModuleName normalises a module file path or name to the kernel's module
// name: base name without .ko and compression suffix, dashes as underscores.
func ModuleName(p string) string {
	b := path.Base(p)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		b = strings.TrimSuffix(b, ext)
	}
	return strings.ReplaceAll(strings.TrimSuffix(b, ".ko"), "-", "_")
}

// ModuleIndex is what ResolveModules needs from /lib/modules/<version>:
// modules.dep (paths relative to that directory) and modules.builtin.
type ModuleIndex struct {
	paths   map[string]string   // name → path
	deps    map[string][]string // name → dependency names
	builtin map[string]bool
}

// ParseModuleIndex parses the contents of modules.dep and modules.builtin.
func ParseModuleIndex(modulesDep, modulesBuiltin []byte) (ModuleIndex, error) {
	idx := ModuleIndex{paths: map[string]string{}, deps: map[string][]string{}, builtin: map[string]bool{}}
	sc := bufio.NewScanner(bytes.NewReader(modulesDep))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		mod, deps, ok := strings.Cut(line, ":")
		if !ok {
			return idx, fmt.Errorf("parsing modules.dep line %d: no colon in %q", n, line)
		}
		name := ModuleName(mod)
		idx.paths[name] = mod
		for _, d := range strings.Fields(deps) {
			idx.deps[name] = append(idx.deps[name], ModuleName(d))
		}
	}
	if err := sc.Err(); err != nil {
		return idx, fmt.Errorf("reading modules.dep: %w", err)
	}
	for _, l := range strings.Fields(string(modulesBuiltin)) {
		idx.builtin[ModuleName(l)] = true
	}
	return idx, nil
}

// Module is one module to load, with its path under /lib/modules/<version>.
type Module struct {
	Name string
	Path string
}

// ResolveModules returns the modules needed to load names, dependencies
// first, each once, leaving out modules built into the kernel. A name that
// is neither a module nor built in is an error.
func (idx ModuleIndex) ResolveModules(names []string) ([]Module, error) {
	var out []Module
	done := map[string]bool{}
	var missing []string
	var visit func(name string, depth int)
	visit = func(name string, depth int) {
		if done[name] || depth > 64 {
			return
		}
		done[name] = true
		if idx.builtin[name] {
			return
		}
		p, ok := idx.paths[name]
		if !ok {
			missing = append(missing, name)
			return
		}
		for _, d := range idx.deps[name] {
			visit(d, depth+1)
		}
		out = append(out, Module{Name: name, Path: p})
	}
	for _, n := range names {
		visit(ModuleName(n), 0)
	}
	if len(missing) > 0 {
		return out, fmt.Errorf("resolving kernel modules: %s neither in modules.dep nor built in", strings.Join(missing, ", "))
	}
	return out, nil
}

//go:embed init.sh
var initTemplateText string

// initApplets are the busybox applets /init runs, linked to busybox in the
// initramfs itself: installing busybox's four hundred links at boot took
// 0.1–0.3 s of it under software emulation. The debug shell installs the
// rest.
func initApplets() []string {
	return []string{"cat", "chroot", "findfs", "hostname", "ifconfig", "insmod", "mkdir", "mount", "rm", "route", "sleep", "switch_root", "umount"}
}

// InitramfsSpec is everything that goes into the initramfs.
type InitramfsSpec struct {
	KernelVersion string
	// Busybox is a statically linked busybox binary.
	Busybox []byte
	// Modules in load order; Data is the uncompressed .ko.
	Modules []ModuleFile
}

// ModuleFile is a module with its uncompressed contents.
type ModuleFile struct {
	Name string
	Data []byte
}

// RenderInit returns the /init script for modules loaded from
// /lib/modules/<version>/<name>.ko, in order.
func RenderInit(kernelVersion string, modules []string) (string, error) {
	tmpl, err := template.New("init").Parse(initTemplateText)
	if err != nil {
		return "", fmt.Errorf("parsing init template: %w", err)
	}
	type mod struct{ Name, Path string }
	var data struct{ Modules []mod }
	for _, m := range modules {
		data.Modules = append(data.Modules, mod{Name: m, Path: modulePath(kernelVersion, m)})
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, data); err != nil {
		return "", fmt.Errorf("rendering init: %w", err)
	}
	return b.String(), nil
}

func modulePath(kernelVersion, name string) string {
	return "/lib/modules/" + kernelVersion + "/" + name + ".ko"
}

// WriteInitramfs writes the gzip-compressed newc cpio initramfs described
// by spec to w. Every entry is owned by root with a zero timestamp, so the
// same spec always gives the same bytes.
func WriteInitramfs(w io.Writer, spec InitramfsSpec) error {
	var names []string
	for _, m := range spec.Modules {
		names = append(names, m.Name)
	}
	initScript, err := RenderInit(spec.KernelVersion, names)
	if err != nil {
		return err
	}
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return fmt.Errorf("compressing initramfs: %w", err)
	}
	cw := NewCPIOWriter(zw)
	modDir := "lib/modules/" + spec.KernelVersion
	var entries []cpioEntry
	for _, d := range []string{"bin", "dev", "etc", "lib", "lib/modules", modDir, "newroot", "proc", "run", "sys", "tmp"} {
		entries = append(entries, cpioEntry{h: CPIOHeader{Name: d, Mode: fs.ModeDir | 0o755}})
	}
	entries = append(entries,
		cpioEntry{h: CPIOHeader{Name: "dev/console", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, DevMajor: 5, DevMinor: 1}},
		cpioEntry{h: CPIOHeader{Name: "bin/busybox", Mode: 0o755}, data: spec.Busybox},
		cpioEntry{h: CPIOHeader{Name: "bin/sh", Mode: fs.ModeSymlink | 0o777, Linkname: "busybox"}},
		cpioEntry{h: CPIOHeader{Name: "init", Mode: 0o755}, data: []byte(initScript)},
	)
	for _, a := range initApplets() {
		entries = append(entries, cpioEntry{h: CPIOHeader{Name: "bin/" + a, Mode: fs.ModeSymlink | 0o777, Linkname: "busybox"}})
	}
	mods := append([]ModuleFile(nil), spec.Modules...)
	sort.Slice(mods, func(i, j int) bool { return mods[i].Name < mods[j].Name })
	for _, m := range mods {
		entries = append(entries, cpioEntry{h: CPIOHeader{Name: modDir + "/" + m.Name + ".ko", Mode: 0o644}, data: m.Data})
	}
	for _, e := range entries {
		e.h.Size = int64(len(e.data))
		if err := cw.WriteHeader(e.h); err != nil {
			return fmt.Errorf("writing initramfs entry %s: %w", e.h.Name, err)
		}
		if _, err := cw.Write(e.data); err != nil {
			return fmt.Errorf("writing initramfs entry %s: %w", e.h.Name, err)
		}
	}
	if err := cw.Close(); err != nil {
		return fmt.Errorf("finishing initramfs archive: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compressing initramfs: %w", err)
	}
	return nil
}

type cpioEntry struct {
	h    CPIOHeader
	data []byte
}
