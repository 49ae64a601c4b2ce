package bootstrap

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"banger/internal/system"
)

const fakeKernelVersion = "6.1.0-99-cloud-amd64"

// fakeHost answers Build's commands the way the real tools would, on a
// temporary directory: mmdebstrap writes a small tree with a kernel,
// modules, busybox and a dpkg status (and, like mmdebstrap's unshare mode,
// an empty /dev); mkfs.ext4 writes into the image; debugfs keeps the
// image's /dev (fakeDebugfs); rm removes; `unshare …` runs its command.
// onMmdebstrap, when set, runs instead of making the tree.
type fakeHost struct {
	t            *testing.T
	onMmdebstrap func(tree string) error
	// onKernel, when set, runs instead of a kernel build's build-kernel.sh.
	onKernel func(in, out string) error
	debugfs  fakeDebugfs
}

// withoutUserns strips the user namespace prefix of a rootless command.
func withoutUserns(argv []string) []string {
	if len(argv) > len(usernsPrefix) && strings.Join(argv[:len(usernsPrefix)], " ") == strings.Join(usernsPrefix, " ") {
		return argv[len(usernsPrefix):]
	}
	return argv
}

func (h *fakeHost) runner() *system.Fake {
	return &system.Fake{Handler: func(argv []string, _ []byte) ([]byte, error) {
		argv = withoutUserns(argv)
		switch argv[0] {
		case "mmdebstrap":
			if slices.ContainsFunc(argv, func(a string) bool { return strings.HasPrefix(a, "--include=") && strings.Contains(a, "linux-source") }) {
				return nil, h.buildKernel(argv)
			}
			if h.onMmdebstrap != nil {
				return nil, h.onMmdebstrap(argv[len(argv)-2])
			}
			return nil, h.makeTree(argv[len(argv)-2])
		case "mkfs.ext4":
			f, err := os.OpenFile(argv[len(argv)-1], os.O_WRONLY, 0)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			_, err = f.WriteAt([]byte("fake ext4"), 1024)
			return nil, err
		case "debugfs":
			return h.debugfs.run(argv)
		case "rm":
			return nil, os.RemoveAll(argv[len(argv)-1])
		}
		return nil, nil
	}}
}

func (h *fakeHost) makeTree(tree string) error {
	modDir := filepath.Join(tree, "lib/modules", fakeKernelVersion)
	files := map[string][]byte{
		"boot/vmlinuz-" + fakeKernelVersion: fakeBzImage(compressFixture(h.t, LZ4, fakeELF(h.t, 50_000)), true),
		"bin/busybox":                       []byte("\x7fELF busybox"),
		"var/lib/dpkg/status":               []byte(sampleStatus),
	}
	for path := range parseDepPaths(sampleModulesDep) {
		files[filepath.Join("lib/modules", fakeKernelVersion, path)] = []byte("module " + path)
	}
	if err := os.MkdirAll(filepath.Join(tree, "dev"), 0o755); err != nil {
		return err
	}
	for p, data := range files {
		full := filepath.Join(tree, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(modDir, "modules.dep"), []byte(sampleModulesDep), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(modDir, "modules.builtin"), []byte(sampleModulesBuiltin), 0o644)
}

func parseDepPaths(dep string) map[string]bool {
	out := map[string]bool{}
	for _, line := range strings.Split(dep, "\n") {
		if mod, _, ok := strings.Cut(line, ":"); ok {
			out[mod] = true
		}
	}
	return out
}

func fakeDeps(r system.Runner) Deps {
	return Deps{
		Runner:         r,
		Mode:           ModeRoot,
		LookPath:       func(n string) (string, error) { return "/usr/bin/" + n, nil },
		AptSourceFiles: func() map[string][]byte { return nil },
	}
}

func countCalls(f *system.Fake, prog string) int {
	n := 0
	for _, c := range f.Calls() {
		if withoutUserns(c)[0] == prog {
			n++
		}
	}
	return n
}

func TestBuildAndCache(t *testing.T) {
	for _, mode := range []Mode{ModeRoot, ModeRootless} {
		t.Run(string(mode), func(t *testing.T) { testBuildAndCache(t, mode) })
	}
}

func testBuildAndCache(t *testing.T, mode Mode) {
	host := &fakeHost{t: t}
	fake := host.runner()
	cache := t.TempDir()
	out := filepath.Join(t.TempDir(), "images", "dev")
	deps := fakeDeps(fake)
	deps.Mode = mode
	var steps []Step
	res, err := Build(context.Background(), deps, Options{Name: "dev", CacheDir: cache, OutDir: out, SizeBytes: 1 << 30},
		func(p Progress) { steps = append(steps, p.Step) })
	if err != nil {
		t.Fatal(err)
	}
	if res.Cached || res.KernelVersion != fakeKernelVersion || res.Compression != "lz4" || res.Packages != 3 || res.Mirror != DefaultMirror {
		t.Errorf("result = %+v", res)
	}
	for _, p := range []string{res.Kernel, res.Vmlinux, res.Initrd, res.Rootfs, res.Manifest} {
		if filepath.Dir(p) != out {
			t.Errorf("%s is not in %s", p, out)
		}
		if _, err := os.Stat(p); err != nil {
			t.Error(err)
		}
	}
	if st, _ := os.Stat(res.Rootfs); st == nil || st.Size() != 1<<30 {
		t.Errorf("rootfs size: %v", st)
	}
	if got := strings.Join(res.Modules, " "); !strings.HasPrefix(got, "virtio_ring virtio virtio_mmio") {
		t.Errorf("modules = %s", got)
	}
	wantSteps := []Step{StepCheck, StepPackages, StepKernel, StepInitramfs, StepManifest, StepRootfs, StepInstall, StepDone}
	if strings.Join(stepStrings(steps), ",") != strings.Join(stepStrings(wantSteps), ",") {
		t.Errorf("steps = %v, want %v", steps, wantSteps)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(cache, "images", ".*")); len(leftovers) > 0 {
		t.Errorf("work directories left in the cache: %v", leftovers)
	}
	checkModeCalls(t, mode, fake)
	if len(host.debugfs.dev) != 1 {
		t.Errorf("debugfs worked on %d images, want 1", len(host.debugfs.dev))
	}
	for img, dev := range host.debugfs.dev {
		if err := checkDevNodes(dev); err != nil || len(host.debugfs.dup[img]) > 0 {
			t.Errorf("/dev of %s: %v, duplicates %q", img, err, host.debugfs.dup[img])
		}
	}

	// The same inputs again come from the cache without running mmdebstrap.
	out2 := filepath.Join(t.TempDir(), "dev2")
	res2, err := Build(context.Background(), deps, Options{Name: "dev2", CacheDir: cache, OutDir: out2, SizeBytes: 1 << 30}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res2.Cached || res2.ManifestSHA256 != res.ManifestSHA256 || countCalls(fake, "mmdebstrap") != 1 {
		t.Errorf("second build: cached=%v, mmdebstrap runs=%d", res2.Cached, countCalls(fake, "mmdebstrap"))
	}
	// Different inputs are a different cache entry.
	if _, err := Build(context.Background(), deps, Options{Name: "dev3", CacheDir: cache, Packages: []string{"curl"}, SizeBytes: 1 << 30}, nil); err != nil {
		t.Fatal(err)
	}
	if countCalls(fake, "mmdebstrap") != 2 {
		t.Errorf("mmdebstrap runs = %d, want 2 after a build with other packages", countCalls(fake, "mmdebstrap"))
	}
	// A non-empty output directory is refused before any work.
	if _, err := Build(context.Background(), deps, Options{Name: "dev", CacheDir: cache, OutDir: out}, nil); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("build into a non-empty directory: %v", err)
	}
}

// checkModeCalls checks that a rootless build probes its user namespace
// first and runs mmdebstrap, mkfs.ext4 and rm in it, and that a root build
// never enters one; debugfs needs no namespace either way.
func checkModeCalls(t *testing.T, mode Mode, fake *system.Fake) {
	t.Helper()
	calls := fake.Calls()
	if mode == ModeRootless {
		if got, want := strings.Join(calls[0], " "), strings.Join(ModeRootless.argv("true"), " "); got != want {
			t.Errorf("first call %q, want the user namespace probe %q", got, want)
		}
	}
	for _, c := range calls {
		inNS := len(withoutUserns(c)) < len(c)
		switch prog := withoutUserns(c)[0]; {
		case prog == "debugfs" && inNS:
			t.Errorf("%q runs in a user namespace", c)
		case prog != "debugfs" && inNS != (mode == ModeRootless):
			t.Errorf("mode %s: %q in a user namespace: %v", mode, c, inNS)
		}
	}
}

func TestCacheIsSharedByModes(t *testing.T) {
	host := &fakeHost{t: t}
	fake := host.runner()
	cache := t.TempDir()
	deps := fakeDeps(fake)
	first, err := Build(context.Background(), deps, Options{Name: "dev", CacheDir: cache}, nil)
	if err != nil {
		t.Fatal(err)
	}
	deps.Mode = ModeRootless
	second, err := Build(context.Background(), deps, Options{Name: "dev", CacheDir: cache}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !second.Cached || second.CacheKey != first.CacheKey {
		t.Errorf("rootless build after a root one: cached %v, key %s vs %s; want the same entry", second.Cached, second.CacheKey, first.CacheKey)
	}
}

func TestBuildRemovesStaleWork(t *testing.T) {
	for _, mode := range []Mode{ModeRoot, ModeRootless} {
		t.Run(string(mode), func(t *testing.T) {
			host := &fakeHost{t: t}
			fake := host.runner()
			cache := t.TempDir()
			stale := filepath.Join(cache, "images", ".0123.work-99")
			if err := os.MkdirAll(filepath.Join(stale, "tree", "etc"), 0o755); err != nil {
				t.Fatal(err)
			}
			deps := fakeDeps(fake)
			deps.Mode = mode
			if _, err := Build(context.Background(), deps, Options{Name: "dev", CacheDir: cache}, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(stale); !os.IsNotExist(err) {
				t.Errorf("stale work directory still there: %v", err)
			}
			want := strings.Join(mode.argv("rm", "-rf", "--one-file-system", "--", stale), " ")
			if !slices.Contains(fake.CallLines(), want) {
				t.Errorf("no %q among %q", want, fake.CallLines())
			}
		})
	}
}

func stepStrings(s []Step) []string {
	var out []string
	for _, x := range s {
		out = append(out, string(x))
	}
	return out
}

func TestBuildInterruptedLeavesNothing(t *testing.T) {
	for _, mode := range []Mode{ModeRoot, ModeRootless} {
		t.Run(string(mode), func(t *testing.T) { testBuildInterruptedLeavesNothing(t, mode) })
	}
}

func testBuildInterruptedLeavesNothing(t *testing.T, mode Mode) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	host := &fakeHost{t: t}
	var tree string
	host.onMmdebstrap = func(dir string) error {
		tree = dir
		if err := os.MkdirAll(filepath.Join(dir, "var/cache/apt"), 0o755); err != nil {
			return err
		}
		cancel() // the user presses ^C while packages install
		return &system.CommandError{Argv: []string{"mmdebstrap"}, ExitCode: -1, Err: context.Canceled}
	}
	cache := t.TempDir()
	out := filepath.Join(t.TempDir(), "dev")
	fake := host.runner()
	deps := fakeDeps(fake)
	deps.Mode = mode
	_, err := Build(ctx, deps, Options{Name: "dev", CacheDir: cache, OutDir: out}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Build = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("output directory exists after an interrupted build: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(cache, "images"))
	if len(entries) != 0 {
		t.Errorf("cache images after an interrupted build: %v", entries)
	}
	if want := strings.Join(mode.argv("rm", "-rf", "--one-file-system", "--", tree), " "); !slices.Contains(fake.CallLines(), want) {
		t.Errorf("tree not removed with %q: %q", want, fake.CallLines())
	}
}

func TestBuildReportsMissingTools(t *testing.T) {
	deps := fakeDeps(&system.Fake{})
	deps.LookPath = func(n string) (string, error) {
		if n == "mmdebstrap" {
			return "", os.ErrNotExist
		}
		return n, nil
	}
	_, err := Build(context.Background(), deps, Options{Name: "x", CacheDir: t.TempDir()}, nil)
	if err == nil || !strings.Contains(err.Error(), "apt-get install mmdebstrap") {
		t.Errorf("Build without mmdebstrap = %v", err)
	}
}

func TestOptionsValidation(t *testing.T) {
	for name, o := range map[string]Options{
		"bad name":                      {Name: "Bad Name", CacheDir: "/c"},
		"tiny":                          {Name: "x", CacheDir: "/c", SizeBytes: 1 << 20},
		"bad package":                   {Name: "x", CacheDir: "/c", Packages: []string{"rm -rf"}},
		"no cache":                      {Name: "x"},
		"relative out":                  {Name: "x", CacheDir: "/c", OutDir: "out"},
		"bad kernel":                    {Name: "x", CacheDir: "/c", Kernel: "linux"},
		"microvm with a kernel package": {Name: "x", CacheDir: "/c", Kernel: KernelMicrovm, KernelPackage: "linux-image-amd64"},
	} {
		if _, err := o.withDefaults(fakeDeps(nil)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	o, err := Options{Name: "x", CacheDir: "/c"}.withDefaults(Deps{AptSourceFiles: func() map[string][]byte {
		return map[string][]byte{"/etc/apt/sources.list": []byte("deb http://mirror.example/debian bookworm main\n")}
	}})
	if err != nil || o.Mirror != "http://mirror.example/debian" || o.Suite != "bookworm" || o.SizeBytes != 2<<30 || o.KernelPackage != "linux-image-cloud-amd64" {
		t.Errorf("defaults = %+v, %v", o, err)
	}
}

func TestRootlessBuildWithoutSubIDsSaysHowToFixIt(t *testing.T) {
	fake := &system.Fake{Handler: func(argv []string, _ []byte) ([]byte, error) {
		return nil, &system.CommandError{Argv: argv, ExitCode: 1, Stderr: `unshare: no line matching user "alice" in /etc/subuid: Success`,
			Err: errors.New("exit status 1")}
	}}
	deps := fakeDeps(fake)
	deps.Mode = ModeRootless
	cache := t.TempDir()
	_, err := Build(context.Background(), deps, Options{Name: "dev", CacheDir: cache}, nil)
	for _, want := range []string{"entering a user namespace", "no line matching user", "sudo banger system setup", "apt-get install uidmap"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if want := strings.Join(ModeRootless.argv("true"), " "); !cmp.Equal(fake.CallLines(), []string{want}) {
		t.Errorf("calls %q, want only the probe %q", fake.CallLines(), want)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(cache, "images", ".*")); len(leftovers) > 0 {
		t.Errorf("work directories made before the probe: %v", leftovers)
	}
}

// envRunner is the fake host with an environment, as system.Exec has one:
// an mmdebstrap run leaves a GnuPG home in its $TMPDIR, as mmdebstrap 1.3
// does after every run.
type envRunner struct {
	*system.Fake
	env  []string
	tmps *[]string
}

func (r envRunner) WithEnv(env ...string) system.Runner {
	r.env = append(slices.Clip(r.env), env...)
	return r
}

func (r envRunner) Run(ctx context.Context, argv ...string) error {
	if withoutUserns(argv)[0] == "mmdebstrap" {
		tmp := os.TempDir()
		for _, kv := range r.env {
			if v, ok := strings.CutPrefix(kv, "TMPDIR="); ok {
				tmp = v
			}
		}
		*r.tmps = append(*r.tmps, tmp)
		if _, err := os.MkdirTemp(tmp, "mmdebstrap.gpghome."); err != nil {
			return err
		}
	}
	return r.Fake.Run(ctx, argv...)
}

func TestMmdebstrapLeavesNoTemporaryFiles(t *testing.T) {
	for _, mode := range []Mode{ModeRoot, ModeRootless} {
		t.Run(string(mode), func(t *testing.T) {
			hostTmp := t.TempDir()
			t.Setenv("TMPDIR", hostTmp)
			host := &fakeHost{t: t}
			var tmps []string
			deps := fakeDeps(envRunner{Fake: host.runner(), tmps: &tmps})
			deps.Mode = mode
			cache := t.TempDir()
			if _, err := Build(context.Background(), deps, Options{Name: "dev", CacheDir: cache, SizeBytes: 1 << 30}, nil); err != nil {
				t.Fatal(err)
			}
			if len(tmps) != 1 || !strings.HasPrefix(tmps[0], cache+string(filepath.Separator)) {
				t.Fatalf("mmdebstrap's TMPDIR = %q, want one directory in the cache %s", tmps, cache)
			}
			if _, err := os.Stat(tmps[0]); !os.IsNotExist(err) {
				t.Errorf("mmdebstrap's temporary directory %s is still there (%v)", tmps[0], err)
			}
			if left, _ := os.ReadDir(hostTmp); len(left) > 0 {
				t.Errorf("left in the host's TMPDIR: %v", left)
			}
		})
	}
}
