package bootstrap

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"banger/internal/system"
)

const fakeKernelVersion = "6.1.0-99-cloud-amd64"

// fakeHost answers Build's commands the way the real tools would, on a
// temporary directory: mmdebstrap writes a small tree with a kernel,
// modules, busybox and a dpkg status; mkfs.ext4 writes into the image; rm
// removes. onMmdebstrap, when set, runs instead of making the tree.
type fakeHost struct {
	t            *testing.T
	onMmdebstrap func() error
}

func (h *fakeHost) runner() *system.Fake {
	return &system.Fake{Handler: func(argv []string, _ []byte) ([]byte, error) {
		switch argv[0] {
		case "mmdebstrap":
			if h.onMmdebstrap != nil {
				return nil, h.onMmdebstrap()
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
		LookPath:       func(n string) (string, error) { return "/usr/bin/" + n, nil },
		AptSourceFiles: func() map[string][]byte { return nil },
	}
}

func countCalls(f *system.Fake, prog string) int {
	n := 0
	for _, c := range f.Calls() {
		if c[0] == prog {
			n++
		}
	}
	return n
}

func TestBuildAndCache(t *testing.T) {
	host := &fakeHost{t: t}
	fake := host.runner()
	cache := t.TempDir()
	out := filepath.Join(t.TempDir(), "images", "dev")
	var steps []Step
	res, err := Build(context.Background(), fakeDeps(fake), Options{Name: "dev", CacheDir: cache, OutDir: out, SizeBytes: 1 << 30},
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

	// The same inputs again come from the cache without running mmdebstrap.
	out2 := filepath.Join(t.TempDir(), "dev2")
	res2, err := Build(context.Background(), fakeDeps(fake), Options{Name: "dev2", CacheDir: cache, OutDir: out2, SizeBytes: 1 << 30}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res2.Cached || res2.ManifestSHA256 != res.ManifestSHA256 || countCalls(fake, "mmdebstrap") != 1 {
		t.Errorf("second build: cached=%v, mmdebstrap runs=%d", res2.Cached, countCalls(fake, "mmdebstrap"))
	}
	// Different inputs are a different cache entry.
	if _, err := Build(context.Background(), fakeDeps(fake), Options{Name: "dev3", CacheDir: cache, Packages: []string{"curl"}, SizeBytes: 1 << 30}, nil); err != nil {
		t.Fatal(err)
	}
	if countCalls(fake, "mmdebstrap") != 2 {
		t.Errorf("mmdebstrap runs = %d, want 2 after a build with other packages", countCalls(fake, "mmdebstrap"))
	}
	// A non-empty output directory is refused before any work.
	if _, err := Build(context.Background(), fakeDeps(fake), Options{Name: "dev", CacheDir: cache, OutDir: out}, nil); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("build into a non-empty directory: %v", err)
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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	host := &fakeHost{t: t}
	host.onMmdebstrap = func() error {
		cancel() // the user presses ^C while packages install
		return &system.CommandError{Argv: []string{"mmdebstrap"}, ExitCode: -1, Err: context.Canceled}
	}
	cache := t.TempDir()
	out := filepath.Join(t.TempDir(), "dev")
	_, err := Build(ctx, fakeDeps(host.runner()), Options{Name: "dev", CacheDir: cache, OutDir: out}, nil)
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
		"bad name":     {Name: "Bad Name", CacheDir: "/c"},
		"tiny":         {Name: "x", CacheDir: "/c", SizeBytes: 1 << 20},
		"bad package":  {Name: "x", CacheDir: "/c", Packages: []string{"rm -rf"}},
		"no cache":     {Name: "x"},
		"relative out": {Name: "x", CacheDir: "/c", OutDir: "out"},
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
