package bootstrap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"banger/internal/system"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// recipeVersion changes whenever Build would produce a different image from
// the same options, so that cached results of an older recipe are not used.
const recipeVersion = "2"

// Defaults for Options.
const (
	DefaultSuite         = "bookworm"
	DefaultSizeBytes     = 2 << 30
	DefaultKernelPackage = "linux-image-cloud-amd64"
	minSizeBytes         = 512 << 20
)

// File names of a built image, in OutDir and in the cache.
const (
	KernelFile   = "vmlinuz"
	VmlinuxFile  = "vmlinux"
	InitrdFile   = "initrd.img"
	RootfsFile   = "rootfs.ext4"
	ManifestFile = "manifest.txt"
	resultFile   = "result.json"
)

// RootLabel is the ext4 label of the root filesystem.
const RootLabel = "banger-root"

// Deps are Build's side-effect dependencies.
type Deps struct {
	// Runner runs mmdebstrap, mkfs.ext4, debugfs, unshare, umount and rm as
	// the calling user, never through sudo; nil means system.Plain().
	Runner system.Runner
	// Mode says how root-owned guest files are made; empty means
	// ModeFor(os.Geteuid()): ModeRoot for root, ModeRootless otherwise.
	Mode Mode
	Log  *slog.Logger
	// LookPath finds host programs and files; nil means HostLookPath.
	LookPath func(string) (string, error)
	// AptSourceFiles returns the host's apt source files for mirror
	// detection; nil reads /etc/apt/sources.list{,.d/*}.
	AptSourceFiles func() map[string][]byte
}

// Options describe the image to build.
type Options struct {
	Name          string
	Suite         string   // default DefaultSuite
	SizeBytes     int64    // size of the sparse rootfs file, default DefaultSizeBytes
	Packages      []string // installed in addition to the base packages
	KernelPackage string   // default DefaultKernelPackage; only for KernelDebian
	// Kernel is KernelDebian (the default) or KernelMicrovm.
	Kernel string
	// Mirror is the Debian archive URL; default: the host's apt mirror, else DefaultMirror.
	Mirror string
	// OutDir receives the artifacts. It must not exist or be empty; it is
	// created in one rename at the end, so an interrupted build leaves
	// nothing there. Empty OutDir returns paths inside CacheDir, which the
	// caller must treat as read-only.
	OutDir string
	// CacheDir holds downloaded packages and finished images keyed by the
	// inputs. Required.
	CacheDir string
	// Refresh rebuilds even when a cached image exists.
	Refresh bool
}

// Result describes a built image.
type Result struct {
	Name           string    `json:"name"`
	Suite          string    `json:"suite"`
	Mirror         string    `json:"mirror"`
	KernelPackage  string    `json:"kernel_package"`
	KernelFlavor   string    `json:"kernel_flavor,omitempty"` // KernelMicrovm, or empty for KernelDebian
	KernelBuild    string    `json:"kernel_build,omitempty"`  // the cached microvm kernel's key
	KernelVersion  string    `json:"kernel_version"`
	Compression    string    `json:"kernel_compression"`
	Kernel         string    `json:"kernel"`
	Vmlinux        string    `json:"vmlinux"`
	Initrd         string    `json:"initrd"`
	Rootfs         string    `json:"rootfs"`
	Manifest       string    `json:"manifest"`
	ManifestSHA256 string    `json:"manifest_sha256"`
	Packages       int       `json:"packages"`
	Modules        []string  `json:"initrd_modules"`
	KernelSize     int64     `json:"kernel_size"`
	VmlinuxSize    int64     `json:"vmlinux_size"`
	InitrdSize     int64     `json:"initrd_size"`
	RootfsSize     int64     `json:"rootfs_size"`      // apparent size
	RootfsAlloc    int64     `json:"rootfs_allocated"` // bytes on disk
	CacheKey       string    `json:"cache_key"`
	Cached         bool      `json:"cached"`
	CreatedAt      time.Time `json:"created_at"`
}

// Step names a phase of Build, stable for progress consumers.
type Step string

// Build's steps, in order.
const (
	StepCheck     Step = "check"
	StepLock      Step = "lock"
	StepCache     Step = "cache"
	StepPackages  Step = "packages"
	StepKernel    Step = "kernel"
	StepInitramfs Step = "initramfs"
	StepManifest  Step = "manifest"
	StepRootfs    Step = "rootfs"
	StepInstall   Step = "install"
	StepDone      Step = "done"
)

// Progress is one event of a running Build.
type Progress struct {
	Step    Step          `json:"step"`
	Message string        `json:"message"`
	Elapsed time.Duration `json:"elapsed"`
}

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
var packagePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?$`)

// withDefaults fills in defaults and validates o.
func (o Options) withDefaults(deps Deps) (Options, error) {
	if o.Suite == "" {
		o.Suite = DefaultSuite
	}
	if o.SizeBytes == 0 {
		o.SizeBytes = DefaultSizeBytes
	}
	var errs []error
	switch o.Kernel {
	case "", KernelDebian:
		o.Kernel = KernelDebian
		if o.KernelPackage == "" {
			o.KernelPackage = DefaultKernelPackage
		}
	case KernelMicrovm:
		if o.KernelPackage != "" {
			errs = append(errs, fmt.Errorf("kernel package %q: a kernel package is only used with the %s kernel; the %s kernel is built from linux-source", o.KernelPackage, KernelDebian, KernelMicrovm))
		}
	default:
		errs = append(errs, fmt.Errorf("kernel %q: use %s (Debian's kernel package) or %s (built from linux-source for microVMs)", o.Kernel, KernelDebian, KernelMicrovm))
	}
	if o.Mirror == "" {
		files := readAptSources
		if deps.AptSourceFiles != nil {
			files = deps.AptSourceFiles
		}
		o.Mirror = MirrorFromAptSources(files())
		if o.Mirror == "" {
			o.Mirror = DefaultMirror
		}
	}
	if !namePattern.MatchString(o.Name) {
		errs = append(errs, fmt.Errorf("image name %q: use lower-case letters, digits, '.', '_' and '-'", o.Name))
	}
	if o.SizeBytes < minSizeBytes {
		errs = append(errs, fmt.Errorf("image size %d bytes: at least %d (512M) is needed", o.SizeBytes, minSizeBytes))
	}
	for _, p := range append([]string{o.KernelPackage}, o.Packages...) {
		if p == "" && o.Kernel == KernelMicrovm {
			continue
		}
		if !packagePattern.MatchString(p) {
			errs = append(errs, fmt.Errorf("package name %q is not a Debian package name", p))
		}
	}
	if o.CacheDir == "" {
		errs = append(errs, errors.New("bootstrap cache directory is not set"))
	}
	if !filepath.IsAbs(o.CacheDir) || (o.OutDir != "" && !filepath.IsAbs(o.OutDir)) {
		errs = append(errs, errors.New("bootstrap cache and output directories must be absolute paths"))
	}
	return o, errors.Join(errs...)
}

// CacheKey returns the key under which an image built with o is cached:
// a hash of every input that changes the result, and of the recipe.
func CacheKey(o Options) (string, error) {
	pk := append([]string(nil), o.Packages...)
	sort.Strings(pk)
	init, err := RenderInit("VERSION", DefaultModules())
	if err != nil {
		return "", err
	}
	guest, err := GuestTar(GuestFiles())
	if err != nil {
		return "", err
	}
	in := struct {
		Recipe, Suite, Mirror, Kernel string
		Size                          int64
		Packages, Base, Modules       []string
		Argv                          []string
		Init, Guest                   string
		// Only for the microvm kernel, so that the keys of images with
		// Debian's kernel stay what they were.
		Flavor       string `json:",omitempty"`
		KernelRecipe string `json:",omitempty"`
	}{Recipe: recipeVersion, Suite: o.Suite, Mirror: o.Mirror, Kernel: o.KernelPackage, Size: o.SizeBytes,
		Packages: pk, Base: basePackages(), Modules: DefaultModules(),
		Argv: mmdebstrapArgv(debootstrapPlan{Suite: "S", Mirror: "M", TreeDir: "T", DebCache: "D", GuestTar: "G"}),
		Init: SHA256Hex([]byte(init)), Guest: SHA256Hex(guest)}
	if o.Kernel == KernelMicrovm {
		in.Flavor, in.KernelRecipe, in.Modules = KernelMicrovm, kernelRecipe(), nil
	}
	b, err := json.Marshal(in)
	if err != nil {
		return "", err
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])[:24], nil
}

func readAptSources() map[string][]byte {
	files := map[string][]byte{}
	if b, err := os.ReadFile("/etc/apt/sources.list"); err == nil {
		files["/etc/apt/sources.list"] = b
	}
	matches, _ := filepath.Glob("/etc/apt/sources.list.d/*")
	for _, m := range matches {
		if b, err := os.ReadFile(m); err == nil {
			files[m] = b
		}
	}
	return files
}

// Build makes (or takes from the cache) the image described by opts and
// reports progress through progress, which may be nil.
func Build(ctx context.Context, deps Deps, opts Options, progress func(Progress)) (Result, error) {
	start := time.Now()
	if deps.Log == nil {
		deps.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if deps.LookPath == nil {
		deps.LookPath = HostLookPath
	}
	if deps.Runner == nil {
		deps.Runner = system.Plain()
	}
	if deps.Mode == "" {
		deps.Mode = ModeFor(os.Geteuid())
	}
	report := func(step Step, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		deps.Log.Info("bootstrap", "step", string(step), "msg", msg)
		if progress != nil {
			progress(Progress{Step: step, Message: msg, Elapsed: time.Since(start)})
		}
	}
	opts, err := opts.withDefaults(deps)
	if err != nil {
		return Result{}, fmt.Errorf("bootstrapping image: %w", err)
	}
	if opts.OutDir != "" {
		if err := checkOutDir(opts.OutDir); err != nil {
			return Result{}, err
		}
	}
	report(StepCheck, "checking host tools")
	if err := CheckTools(deps.Mode, deps.LookPath); err != nil {
		return Result{}, fmt.Errorf("bootstrapping image %s: %w", opts.Name, err)
	}
	key, err := CacheKey(opts)
	if err != nil {
		return Result{}, fmt.Errorf("computing cache key: %w", err)
	}
	imagesDir := filepath.Join(opts.CacheDir, "images")
	debDir := filepath.Join(opts.CacheDir, "debs", opts.Suite)
	for _, d := range []string{imagesDir, debDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return Result{}, fmt.Errorf("creating bootstrap cache %s: %w", d, err)
		}
	}
	unlock, err := lockFile(ctx, filepath.Join(opts.CacheDir, "bootstrap.lock"), func() {
		report(StepLock, "waiting for another bootstrap using %s", opts.CacheDir)
	})
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	removeStaleWork(ctx, deps, imagesDir)

	entry := filepath.Join(imagesDir, key)
	res, err := loadResult(entry)
	switch {
	case err == nil && !opts.Refresh:
		res.Cached = true
		report(StepCache, "using cached image %s (built %s)", key, res.CreatedAt.Format(time.RFC3339))
	default:
		b := builder{deps: deps, opts: opts, key: key, debDir: debDir, report: report}
		if res, err = b.build(ctx, entry); err != nil {
			return Result{}, fmt.Errorf("bootstrapping image %s: %w", opts.Name, err)
		}
	}
	res.Name = opts.Name
	if opts.OutDir == "" {
		report(StepDone, "image ready in %s", time.Since(start).Round(time.Millisecond))
		return res, nil
	}
	report(StepInstall, "copying image into %s", opts.OutDir)
	out, err := install(ctx, res, opts.OutDir)
	if err != nil {
		return Result{}, fmt.Errorf("bootstrapping image %s: %w", opts.Name, err)
	}
	report(StepDone, "image ready in %s", time.Since(start).Round(time.Millisecond))
	return out, nil
}

func checkOutDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking output directory %s: %w", dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("output directory %s is not empty: remove it or choose another", dir)
	}
	return nil
}

func resultPaths(r Result, dir string) Result {
	r.Kernel = filepath.Join(dir, KernelFile)
	r.Vmlinux = filepath.Join(dir, VmlinuxFile)
	r.Initrd = filepath.Join(dir, InitrdFile)
	r.Rootfs = filepath.Join(dir, RootfsFile)
	r.Manifest = filepath.Join(dir, ManifestFile)
	return r
}

// loadResult reads a complete cache entry; any missing file means there is
// no usable entry.
func loadResult(dir string) (Result, error) {
	var r Result
	b, err := os.ReadFile(filepath.Join(dir, resultFile))
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("reading cached result %s: %w", dir, err)
	}
	r = resultPaths(r, dir)
	for _, p := range []string{r.Kernel, r.Vmlinux, r.Initrd, r.Rootfs, r.Manifest} {
		if _, err := os.Stat(p); err != nil {
			return r, err
		}
	}
	return r, nil
}

// install copies a cached image into outDir through a hidden sibling
// directory renamed into place at the end.
func install(ctx context.Context, res Result, outDir string) (Result, error) {
	parent := filepath.Dir(outDir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return Result{}, fmt.Errorf("creating %s: %w", parent, err)
	}
	stage, err := os.MkdirTemp(parent, "."+filepath.Base(outDir)+".bootstrap-")
	if err != nil {
		return Result{}, fmt.Errorf("staging image: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(stage)
		}
	}()
	if err := os.Chmod(stage, 0o755); err != nil {
		return Result{}, err
	}
	src := []string{res.Kernel, res.Vmlinux, res.Initrd, res.Rootfs, res.Manifest}
	out := resultPaths(res, outDir)
	for i, dst := range []string{out.Kernel, out.Vmlinux, out.Initrd, out.Rootfs, out.Manifest} {
		if err := CopyFile(ctx, src[i], filepath.Join(stage, filepath.Base(dst))); err != nil {
			return Result{}, err
		}
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	os.Remove(outDir) // an empty directory may stand in the way
	if err := os.Rename(stage, outDir); err != nil {
		return Result{}, fmt.Errorf("moving image into %s: %w", outDir, err)
	}
	ok = true
	return out, nil
}

// decompressModule returns the plain .ko for a possibly compressed module.
func decompressModule(name string, data []byte) ([]byte, error) {
	var r io.Reader
	switch {
	case strings.HasSuffix(name, ".xz"):
		zr, err := xz.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		r = zr
	case strings.HasSuffix(name, ".zst"):
		zr, err := zstd.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r = zr
	default:
		return data, nil
	}
	return io.ReadAll(r)
}
