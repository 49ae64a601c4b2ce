package bootstrap

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"banger/internal/system"
)

// builder runs one uncached build.
type builder struct {
	deps   Deps
	opts   Options
	key    string
	debDir string
	report func(Step, string, ...any)
}

// build makes the image in a work directory beside entry and renames it to
// entry when complete. On failure or cancellation the work directory is
// removed (in rootless mode from inside the user namespace, which alone may
// remove what the guest's system users own).
func (b *builder) build(ctx context.Context, entry string) (res Result, err error) {
	if b.deps.Mode == ModeRootless {
		if err := CheckUserNamespace(ctx, b.deps.Runner); err != nil {
			return res, err
		}
	}
	work, tree, finish, err := b.workDir(ctx, filepath.Dir(entry), b.key)
	if err != nil {
		return res, err
	}
	defer finish(&err)

	guest, err := GuestTar(GuestFiles())
	if err != nil {
		return res, err
	}
	if err := os.WriteFile(filepath.Join(work, "guest.tar"), guest, 0o644); err != nil {
		return res, fmt.Errorf("writing guest files: %w", err)
	}
	microvm := b.opts.Kernel == KernelMicrovm
	var kernel kernelBuild
	if microvm {
		if kernel, err = b.microvmKernel(ctx); err != nil {
			return res, err
		}
	}
	pkgs := append(basePackages(), b.opts.Packages...)
	if !microvm {
		pkgs = append(pkgs, b.opts.KernelPackage)
	}
	b.report(StepPackages, "installing %d packages from %s %s with mmdebstrap", len(pkgs), b.opts.Mirror, b.opts.Suite)
	argv := mmdebstrapArgv(debootstrapPlan{
		Suite: b.opts.Suite, Mirror: b.opts.Mirror, Packages: pkgs,
		TreeDir: tree, DebCache: b.debDir, GuestTar: filepath.Join(work, "guest.tar"),
	})
	if err := b.mmdebstrap(ctx, tree, argv); err != nil {
		return res, fmt.Errorf("installing packages with mmdebstrap (is %s reachable?): %w", b.opts.Mirror, err)
	}

	res = Result{Suite: b.opts.Suite, Mirror: b.opts.Mirror, KernelPackage: b.opts.KernelPackage, CacheKey: b.key}
	if microvm {
		res.KernelVersion, res.KernelFlavor, res.KernelBuild = kernel.Release, KernelMicrovm, kernel.Key
		for src, dst := range map[string]string{"bzImage": KernelFile, VmlinuxFile: VmlinuxFile} {
			if err := CopyFile(ctx, kernel.path(src), filepath.Join(work, dst)); err != nil {
				return res, err
			}
		}
		b.report(StepInitramfs, "writing initramfs (the microvm kernel has its drivers built in)")
		if _, err = writeInitramfs(tree, res.KernelVersion, filepath.Join(work, InitrdFile), false); err != nil {
			return res, err
		}
	} else {
		if err := b.debianKernel(tree, work, &res); err != nil {
			return res, err
		}
		b.report(StepInitramfs, "writing initramfs with the virtio modules of %s", res.KernelVersion)
		if res.Modules, err = writeInitramfs(tree, res.KernelVersion, filepath.Join(work, InitrdFile), true); err != nil {
			return res, err
		}
	}

	b.report(StepManifest, "writing package manifest")
	status, err := os.ReadFile(filepath.Join(tree, "var/lib/dpkg/status"))
	if err != nil {
		return res, fmt.Errorf("reading dpkg status: %w", err)
	}
	installed, err := ParseDpkgStatus(status)
	if err != nil {
		return res, err
	}
	manifest := RenderManifest(installed)
	res.Packages, res.ManifestSHA256 = len(installed), SHA256Hex(manifest)
	if err := writeFiles(work, map[string][]byte{ManifestFile: manifest}); err != nil {
		return res, err
	}

	b.report(StepRootfs, "writing %d MiB ext4 root filesystem", b.opts.SizeBytes>>20)
	rootfs := filepath.Join(work, RootfsFile)
	if err := makeSparse(rootfs, b.opts.SizeBytes); err != nil {
		return res, err
	}
	// In rootless mode mkfs.ext4 reads the tree inside the user namespace,
	// where the guest's files have their guest owners.
	if err := b.deps.Runner.Run(ctx, b.deps.Mode.argv(mkfsArgv(tree, rootfs)...)...); err != nil {
		return res, fmt.Errorf("writing root filesystem: %w", err)
	}
	if err := b.addDevNodes(ctx, tree, rootfs); err != nil {
		return res, err
	}

	res = resultPaths(res, entry)
	res.CreatedAt = time.Now().UTC().Truncate(time.Second)
	fillSizes(&res, work)
	os.Remove(filepath.Join(work, "guest.tar"))
	return res, storeWork(ctx, b.deps, res, tree, work, entry, "image")
}

// storeWork finishes a build in work: it writes result as the entry's
// result file, removes the build tree and renames work to entry in the
// cache, replacing an older entry (a Refresh). what names the build in
// errors.
func storeWork(ctx context.Context, deps Deps, result any, tree, work, entry, what string) error {
	rj, err := json.MarshalIndent(result, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFiles(work, map[string][]byte{resultFile: rj}); err != nil {
		return err
	}
	if err := removeTree(ctx, deps, tree); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.RemoveAll(entry); err != nil {
		return fmt.Errorf("replacing cached %s: %w", what, err)
	}
	if err := os.Rename(work, entry); err != nil {
		return fmt.Errorf("storing %s in cache: %w", what, err)
	}
	return nil
}

// mmdebstrap runs argv (in the user namespace when rootless); an
// interrupted run has every process left in tree killed. Its temporary
// files go to a directory beside tree that is removed when it returns:
// mmdebstrap 1.3 leaves the GnuPG home it makes in $TMPDIR behind after
// every run (its forked child exits without File::Temp's cleanup).
func (b *builder) mmdebstrap(ctx context.Context, tree string, argv []string) error {
	b.deps.Log.Debug("running mmdebstrap", "argv", argv)
	runner := b.deps.Runner
	if er, ok := runner.(system.EnvRunner); ok {
		tmp := filepath.Join(filepath.Dir(tree), "tmp")
		if err := os.Mkdir(tmp, 0o700); err != nil {
			return fmt.Errorf("creating mmdebstrap's temporary directory: %w", err)
		}
		defer os.RemoveAll(tmp)
		runner = er.WithEnv("TMPDIR=" + tmp)
	}
	stopReaper := context.AfterFunc(ctx, func() { reapTreeProcesses(b.deps.Log, tree) })
	defer stopReaper()
	return runner.Run(ctx, b.deps.Mode.argv(argv...)...)
}

// debianKernel finds the kernel package's kernel in tree and writes its
// bzImage and the vmlinux extracted from it into work.
func (b *builder) debianKernel(tree, work string, res *Result) error {
	var err error
	if res.KernelVersion, err = kernelVersion(tree); err != nil {
		return err
	}
	b.report(StepKernel, "extracting vmlinux from kernel %s", res.KernelVersion)
	bz, err := os.ReadFile(filepath.Join(tree, "boot", "vmlinuz-"+res.KernelVersion))
	if err != nil {
		return fmt.Errorf("reading kernel: %w", err)
	}
	vmlinux, comp, err := ExtractVmlinux(bz)
	if err != nil {
		return fmt.Errorf("kernel %s: %w", res.KernelVersion, err)
	}
	res.Compression = string(comp)
	return writeFiles(work, map[string][]byte{KernelFile: bz, VmlinuxFile: vmlinux})
}

// workDir makes the hidden work directory of a build keyed key in dir, and
// names the build tree inside it. finish, deferred with the build's error,
// removes the tree (from inside the user namespace when rootless, where
// only it may remove what the guest's system users own) and, when the
// build failed or was interrupted, the whole directory.
func (b *builder) workDir(ctx context.Context, dir, key string) (work, tree string, finish func(*error), err error) {
	work, err = os.MkdirTemp(dir, "."+key+".work-")
	if err != nil {
		return "", "", nil, fmt.Errorf("creating work directory: %w", err)
	}
	if err := os.Chmod(work, 0o755); err != nil {
		os.RemoveAll(work)
		return "", "", nil, err
	}
	tree = filepath.Join(work, "tree")
	finish = func(errp *error) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if cerr := removeTree(cctx, b.deps, tree); cerr != nil && *errp == nil {
			*errp = cerr
		}
		if *errp != nil {
			os.RemoveAll(work)
		}
	}
	return work, tree, finish, nil
}

// mkfsArgv makes an ext4 filesystem from tree inside the existing sparse file.
func mkfsArgv(tree, image string) []string {
	return []string{"mkfs.ext4", "-q", "-F", "-L", RootLabel, "-d", tree, image}
}

func makeSparse(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return fmt.Errorf("sizing %s: %w", path, err)
	}
	return f.Close()
}

func writeFiles(dir string, files map[string][]byte) error {
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
	return nil
}

func fillSizes(r *Result, dir string) {
	size := func(name string) int64 {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return 0
		}
		return st.Size()
	}
	r.KernelSize, r.VmlinuxSize, r.InitrdSize, r.RootfsSize = size(KernelFile), size(VmlinuxFile), size(InitrdFile), size(RootfsFile)
	r.RootfsAlloc = allocatedBytes(filepath.Join(dir, RootfsFile))
}

// kernelVersion finds the single kernel installed in tree.
func kernelVersion(tree string) (string, error) {
	entries, err := os.ReadDir(filepath.Join(tree, "lib/modules"))
	if err != nil {
		return "", fmt.Errorf("finding the installed kernel: %w", err)
	}
	var versions []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(tree, "boot", "vmlinuz-"+e.Name())); err == nil {
			versions = append(versions, e.Name())
		}
	}
	if len(versions) != 1 {
		return "", fmt.Errorf("finding the installed kernel: want one /boot/vmlinuz-* with modules, found %d %v", len(versions), versions)
	}
	return versions[0], nil
}

// writeInitramfs builds the initramfs from busybox and, with modules, the
// modules of version in tree, and returns the names of the modules it
// loads, in order.
func writeInitramfs(tree, version, out string, modules bool) ([]string, error) {
	busybox, err := os.ReadFile(filepath.Join(tree, "bin/busybox"))
	if err != nil {
		return nil, fmt.Errorf("reading busybox from the busybox-static package: %w", err)
	}
	spec := InitramfsSpec{KernelVersion: version, Busybox: busybox}
	var names []string
	if modules {
		if spec.Modules, err = initramfsModules(tree, version); err != nil {
			return nil, err
		}
		for _, m := range spec.Modules {
			names = append(names, m.Name)
		}
	}
	var buf bytes.Buffer
	if err := WriteInitramfs(&buf, spec); err != nil {
		return nil, err
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return nil, fmt.Errorf("writing initramfs: %w", err)
	}
	return names, nil
}

// initramfsModules reads DefaultModules and their dependencies from the
// modules of version in tree, leaving out those built into the kernel.
func initramfsModules(tree, version string) ([]ModuleFile, error) {
	modDir := filepath.Join(tree, "lib/modules", version)
	dep, err := os.ReadFile(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("reading modules.dep of %s: %w", version, err)
	}
	builtin, err := os.ReadFile(filepath.Join(modDir, "modules.builtin"))
	if err != nil {
		return nil, fmt.Errorf("reading modules.builtin of %s: %w", version, err)
	}
	idx, err := ParseModuleIndex(dep, builtin)
	if err != nil {
		return nil, err
	}
	mods, err := idx.ResolveModules(DefaultModules())
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", version, err)
	}
	var files []ModuleFile
	for _, m := range mods {
		raw, err := os.ReadFile(filepath.Join(modDir, m.Path))
		if err != nil {
			return nil, fmt.Errorf("reading module %s: %w", m.Name, err)
		}
		data, err := decompressModule(m.Path, raw)
		if err != nil {
			return nil, fmt.Errorf("decompressing module %s: %w", m.Name, err)
		}
		files = append(files, ModuleFile{Name: m.Name, Data: data})
	}
	return files, nil
}

// removeTree removes a build tree without crossing into other filesystems.
// mmdebstrap mounts /proc, /sys and /dev in a mount namespace of its own, so
// nothing of an interrupted build stays mounted; as root, removeTree still
// unmounts whatever lies below tree (an older banger's mmdebstrap in root
// mode left mounts behind). In rootless mode the tree holds files owned by
// the user's subordinate ids, which only the user namespace may remove.
func removeTree(ctx context.Context, deps Deps, tree string) error {
	if _, err := os.Lstat(tree); os.IsNotExist(err) {
		return nil
	}
	if deps.Mode == ModeRoot {
		if info, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
			for _, m := range MountsUnder(info, tree) {
				if err := deps.Runner.Run(ctx, "umount", "--lazy", m); err != nil {
					deps.Log.Warn("unmounting leftover mount", "path", m, "err", err)
				}
			}
		}
	}
	if err := deps.Runner.Run(ctx, deps.Mode.argv("rm", "-rf", "--one-file-system", "--", tree)...); err != nil {
		return fmt.Errorf("removing build tree %s: %w", tree, err)
	}
	return nil
}

// removeStaleWork removes the work directories that builds killed outright
// (bangerd killed with -9, a power cut) left in imagesDir. The caller holds
// the cache lock, so no build is using them.
func removeStaleWork(ctx context.Context, deps Deps, imagesDir string) {
	stale, _ := filepath.Glob(filepath.Join(imagesDir, ".*.work-*"))
	for _, dir := range stale {
		if err := removeTree(ctx, deps, dir); err != nil {
			deps.Log.Warn("removing the work directory of an earlier build", "path", dir, "err", err)
			continue
		}
		deps.Log.Info("removed the work directory of an earlier build", "path", dir)
	}
}

// MountsUnder returns the mount points in a /proc/PID/mountinfo text that
// lie below dir, deepest first, so they can be unmounted in that order.
func MountsUnder(mountinfo []byte, dir string) []string {
	dir = strings.TrimRight(dir, "/") + "/"
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if strings.HasPrefix(mp, dir) {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] > out[j] })
	return out
}

// unescapeMount decodes the octal escapes (\040 for space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
