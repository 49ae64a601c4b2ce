package bootstrap

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Kernels an image can boot, the values of Options.Kernel.
const (
	// KernelDebian is Debian's kernel package (Options.KernelPackage) with
	// banger's initramfs loading its virtio modules.
	KernelDebian = "debian"
	// KernelMicrovm is a kernel built from Debian's linux-source package
	// with microvm.config: everything a guest needs built in, no modules.
	KernelMicrovm = "microvm"
)

// MicrovmConfig is the configuration fragment of the microvm kernel,
// applied on top of allnoconfig.
//
//go:embed microvm.config
var MicrovmConfig string

//go:embed build-kernel.sh
var buildKernelScript string

// kernelBuildPackages are what building the microvm kernel needs in its
// build tree: the source and the tool chain.
func kernelBuildPackages() []string {
	return []string{"linux-source", "build-essential", "bc", "bison", "flex", "libelf-dev", "libssl-dev", "xz-utils"}
}

// kernelPlan holds the inputs of the mmdebstrap run that builds a kernel.
type kernelPlan struct {
	Suite, Mirror string
	TreeDir       string // the build tree
	DebCache      string // cached .deb files of the build tree, synced in and out
	InDir         string // holds microvm.config and build-kernel.sh
	OutDir        string // receives vmlinux, bzImage, config, release and source-version
}

// kernelBuildArgv returns the mmdebstrap command that installs the build
// tree, runs build-kernel.sh in it as the tree's root and copies the
// results out. The tree itself is only a work area, removed afterwards.
func kernelBuildArgv(p kernelPlan) []string {
	pkgs := kernelBuildPackages()
	sort.Strings(pkgs)
	argv := append(mmdebstrapHead(pkgs), "--skip=download/empty")
	argv = append(argv, debCacheSyncIn(p.DebCache)...)
	return append(argv,
		debCacheSyncOut(p.DebCache),
		`--customize-hook=mkdir -p "$1/banger"`,
		"--customize-hook=sync-in "+p.InDir+" /banger",
		`--customize-hook=chroot "$1" sh /banger/build-kernel.sh`,
		"--customize-hook=sync-out /banger/out "+p.OutDir,
		p.Suite,
		p.TreeDir,
		p.Mirror,
	)
}

// kernelBuild is a built microvm kernel in the cache.
type kernelBuild struct {
	Key           string    `json:"key"`
	Release       string    `json:"release"`        // uname -r
	SourceVersion string    `json:"source_version"` // of the linux-source package
	CreatedAt     time.Time `json:"created_at"`
	dir           string
}

func (k kernelBuild) path(name string) string { return filepath.Join(k.dir, name) }

// kernelRecipe is every input of a microvm kernel build other than the
// suite and mirror; it is part of both the kernel's and the image's cache
// key.
func kernelRecipe() string {
	argv := kernelBuildArgv(kernelPlan{Suite: "S", Mirror: "M", TreeDir: "T", DebCache: "D", InDir: "I", OutDir: "O"})
	return SHA256Hex([]byte(strings.Join(argv, "\x00") + "\x00" + MicrovmConfig + "\x00" + buildKernelScript))
}

// kernelCacheKey names the cached kernel built for suite from mirror.
func kernelCacheKey(suite, mirror string) string {
	return SHA256Hex([]byte(strings.Join([]string{kernelRecipe(), suite, mirror}, "\x00")))[:24]
}

// microvmKernel returns the cached microvm kernel for the build's suite
// and mirror, building it first when there is none (or on Refresh). The
// caller holds the cache lock.
func (b *builder) microvmKernel(ctx context.Context) (kernelBuild, error) {
	dir := filepath.Join(b.opts.CacheDir, "kernels")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return kernelBuild{}, fmt.Errorf("creating kernel cache %s: %w", dir, err)
	}
	removeStaleWork(ctx, b.deps, dir)
	key := kernelCacheKey(b.opts.Suite, b.opts.Mirror)
	entry := filepath.Join(dir, key)
	if k, err := loadKernel(entry); err == nil && !b.opts.Refresh {
		b.report(StepKernel, "using cached microvm kernel %s (built %s)", k.Release, k.CreatedAt.Format(time.RFC3339))
		return k, nil
	}
	b.report(StepKernel, "building the microvm kernel from %s's linux-source (minutes; cached afterwards)", b.opts.Suite)
	return b.buildKernel(ctx, entry, key)
}

// buildKernel builds the kernel in a work directory beside entry and
// renames it to entry when complete, as build does with an image.
func (b *builder) buildKernel(ctx context.Context, entry, key string) (k kernelBuild, err error) {
	work, tree, finish, err := b.workDir(ctx, filepath.Dir(entry), key)
	if err != nil {
		return k, err
	}
	defer finish(&err)
	in, out := filepath.Join(work, "in"), filepath.Join(work, "out")
	for _, d := range []string{in, out} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return k, err
		}
	}
	if err := writeFiles(in, map[string][]byte{"microvm.config": []byte(MicrovmConfig), "build-kernel.sh": []byte(buildKernelScript)}); err != nil {
		return k, err
	}
	debDir := filepath.Join(b.opts.CacheDir, "debs", b.opts.Suite+"-kernel-build")
	if err := os.MkdirAll(debDir, 0o755); err != nil {
		return k, fmt.Errorf("creating bootstrap cache %s: %w", debDir, err)
	}
	argv := kernelBuildArgv(kernelPlan{Suite: b.opts.Suite, Mirror: b.opts.Mirror, TreeDir: tree, DebCache: debDir, InDir: in, OutDir: out})
	if err := b.mmdebstrap(ctx, tree, argv); err != nil {
		return k, fmt.Errorf("building the microvm kernel from linux-source (the build's output is in the bootstrap log): %w", err)
	}
	k = kernelBuild{Key: key, CreatedAt: time.Now().UTC().Truncate(time.Second)}
	for name, v := range map[string]*string{"release": &k.Release, "source-version": &k.SourceVersion} {
		s, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			return k, fmt.Errorf("reading the kernel build's %s: %w", name, err)
		}
		*v = strings.TrimSpace(string(s))
	}
	if k.Release == "" {
		return k, errors.New("the kernel build reported no release")
	}
	for _, name := range []string{VmlinuxFile, "bzImage", "config"} {
		if err := os.Rename(filepath.Join(out, name), filepath.Join(work, name)); err != nil {
			return k, fmt.Errorf("storing the built kernel: %w", err)
		}
	}
	os.RemoveAll(out)
	os.RemoveAll(in)
	if err := storeWork(ctx, b.deps, k, tree, work, entry, "kernel"); err != nil {
		return k, err
	}
	k.dir = entry
	return k, nil
}

// loadKernel reads a complete kernel cache entry.
func loadKernel(dir string) (kernelBuild, error) {
	var k kernelBuild
	b, err := os.ReadFile(filepath.Join(dir, resultFile))
	if err != nil {
		return k, err
	}
	if err := json.Unmarshal(b, &k); err != nil {
		return k, fmt.Errorf("reading cached kernel %s: %w", dir, err)
	}
	k.dir = dir
	for _, name := range []string{VmlinuxFile, "bzImage", "config"} {
		if _, err := os.Stat(k.path(name)); err != nil {
			return k, err
		}
	}
	return k, nil
}
