package bootstrap

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const fakeMicrovmRelease = "6.1.999-banger-microvm"

// buildKernel plays mmdebstrap running a kernel build: it checks that the
// hooks hand build-kernel.sh and the configuration in and take the results
// out, then writes what build-kernel.sh would into the out directory.
func (h *fakeHost) buildKernel(argv []string) error {
	var in, out string
	for _, a := range argv {
		if f := strings.Fields(strings.TrimPrefix(a, "--customize-hook=")); len(f) == 3 && f[0] == "sync-in" && f[2] == "/banger" {
			in = f[1]
		}
		if f := strings.Fields(strings.TrimPrefix(a, "--customize-hook=")); len(f) == 3 && f[0] == "sync-out" && f[1] == "/banger/out" {
			out = f[2]
		}
	}
	if in == "" || out == "" {
		return errors.New("fake mmdebstrap: no sync-in of the build inputs or sync-out of the results")
	}
	for name, want := range map[string]string{"microvm.config": MicrovmConfig, "build-kernel.sh": buildKernelScript} {
		if got, err := os.ReadFile(filepath.Join(in, name)); err != nil || string(got) != want {
			return errors.New("fake mmdebstrap: " + name + " was not handed to the build")
		}
	}
	if err := os.MkdirAll(filepath.Join(argv[len(argv)-2], "usr/src"), 0o755); err != nil {
		return err
	}
	if h.onKernel != nil {
		return h.onKernel(in, out)
	}
	return writeFiles(out, map[string][]byte{
		"vmlinux": []byte("\x7fELF microvm vmlinux"), "bzImage": []byte("microvm bzImage"),
		"config": []byte(MicrovmConfig), "release": []byte(fakeMicrovmRelease + "\n"), "source-version": []byte("6.1.999-1\n"),
	})
}

func kernelBuilds(calls [][]string) int {
	n := 0
	for _, c := range calls {
		if c = withoutUserns(c); c[0] == "mmdebstrap" && strings.Contains(strings.Join(c, " "), "linux-source") {
			n++
		}
	}
	return n
}

func TestMicrovmKernelBuildAndCache(t *testing.T) {
	for _, mode := range []Mode{ModeRoot, ModeRootless} {
		t.Run(string(mode), func(t *testing.T) {
			host := &fakeHost{t: t}
			fake := host.runner()
			deps := fakeDeps(fake)
			deps.Mode = mode
			cache := t.TempDir()
			out := filepath.Join(t.TempDir(), "fast")
			res, err := Build(context.Background(), deps, Options{Name: "fast", Kernel: KernelMicrovm, CacheDir: cache, OutDir: out, SizeBytes: 1 << 30}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.KernelFlavor != KernelMicrovm || res.KernelVersion != fakeMicrovmRelease || res.KernelPackage != "" || len(res.Modules) != 0 || res.KernelBuild == "" {
				t.Errorf("result = %+v", res)
			}
			if b, _ := os.ReadFile(res.Vmlinux); string(b) != "\x7fELF microvm vmlinux" {
				t.Errorf("vmlinux = %q, want the built one", b)
			}
			if b, _ := os.ReadFile(res.Kernel); string(b) != "microvm bzImage" {
				t.Errorf("vmlinuz = %q, want the built bzImage", b)
			}
			checkNoModules(t, res.Initrd)
			// The root file system gets no kernel package; the build
			// tree gets the source and a tool chain, in a namespace
			// when rootless, like every build.
			for _, c := range fake.Calls() {
				inner := withoutUserns(c)
				if inner[0] != "mmdebstrap" {
					continue
				}
				if mode == ModeRootless && len(inner) == len(c) {
					t.Errorf("rootless mmdebstrap outside the user namespace: %q", c)
				}
				i := slices.IndexFunc(inner, func(a string) bool { return strings.HasPrefix(a, "--include=") })
				if i < 0 || strings.Contains(inner[i], "linux-image") {
					t.Errorf("mmdebstrap's packages: %q", inner)
				}
			}
			// Another image of the same suite reuses the kernel.
			if _, err := Build(context.Background(), deps, Options{Name: "fast2", Kernel: KernelMicrovm, Packages: []string{"curl"}, CacheDir: cache, SizeBytes: 1 << 30}, nil); err != nil {
				t.Fatal(err)
			}
			if n := kernelBuilds(fake.Calls()); n != 1 {
				t.Errorf("kernel built %d times for two images, want 1", n)
			}
			if leftovers, _ := filepath.Glob(filepath.Join(cache, "*", ".*work-*")); len(leftovers) > 0 {
				t.Errorf("work directories left in the cache: %v", leftovers)
			}
			// Refresh builds it again.
			if _, err := Build(context.Background(), deps, Options{Name: "fast3", Kernel: KernelMicrovm, CacheDir: cache, SizeBytes: 1 << 30, Refresh: true}, nil); err != nil {
				t.Fatal(err)
			}
			if n := kernelBuilds(fake.Calls()); n != 2 {
				t.Errorf("kernel built %d times after a refresh, want 2", n)
			}
		})
	}
}

// checkNoModules checks that an initramfs holds no kernel module and
// loads none.
func checkNoModules(t *testing.T, initrd string) {
	t.Helper()
	data, err := os.ReadFile(initrd)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var init string
	for _, f := range readAll(t, raw) {
		if strings.HasSuffix(f.H.Name, ".ko") {
			t.Errorf("initramfs holds module %s", f.H.Name)
		}
		if f.H.Name == "init" {
			init = f.Data
		}
	}
	if init == "" {
		t.Fatal("initramfs has no /init")
	}
	if regexp.MustCompile(`(?m)^load `).MatchString(init) {
		t.Errorf("/init loads modules:\n%s", init)
	}
}

func TestMicrovmKernelBuildFailureLeavesNothing(t *testing.T) {
	host := &fakeHost{t: t, onKernel: func(in, out string) error { return errors.New("exit status 2") }}
	cache := t.TempDir()
	out := filepath.Join(t.TempDir(), "fast")
	_, err := Build(context.Background(), fakeDeps(host.runner()), Options{Name: "fast", Kernel: KernelMicrovm, CacheDir: cache, OutDir: out}, nil)
	if err == nil || !strings.Contains(err.Error(), "building the microvm kernel") || !strings.Contains(err.Error(), "exit status 2") {
		t.Fatalf("failed kernel build = %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(cache, "kernels")); len(entries) > 0 {
		t.Errorf("the kernel cache keeps %v after a failed build", entries)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("output directory after a failed build: %v", err)
	}
}

// The microvm kernel has no modules, so every driver the initramfs loads
// for Debian's kernel must be built into it.
func TestMicrovmConfigBuildsInWhatTheInitramfsLoads(t *testing.T) {
	option := map[string]string{
		"virtio_ring": "CONFIG_VIRTIO_MENU", "virtio": "CONFIG_VIRTIO_MENU", "virtio_mmio": "CONFIG_VIRTIO_MMIO",
		"virtio_blk": "CONFIG_VIRTIO_BLK", "failover": "CONFIG_VIRTIO_NET", "net_failover": "CONFIG_VIRTIO_NET",
		"virtio_net": "CONFIG_VIRTIO_NET", "vsock": "CONFIG_VSOCKETS", "vmw_vsock_virtio_transport_common": "CONFIG_VIRTIO_VSOCKETS",
		"vmw_vsock_virtio_transport": "CONFIG_VIRTIO_VSOCKETS", "virtio_rng": "CONFIG_HW_RANDOM_VIRTIO", "overlay": "CONFIG_OVERLAY_FS",
	}
	set := map[string]bool{}
	for _, line := range strings.Split(MicrovmConfig, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "CONFIG_") {
			if v == "m" {
				t.Errorf("%s is a module; the microvm kernel has none", k)
			}
			set[k] = v == "y"
		} else if line != "" && !strings.HasPrefix(line, "#") {
			t.Errorf("not a configuration line: %q", line)
		}
	}
	for _, m := range DefaultModules() {
		if o, ok := option[m]; !ok || !set[o] {
			t.Errorf("module %s (option %q) is not built into the microvm kernel", m, o)
		}
	}
	// The guest contract: the root and work disks, the initramfs banger
	// writes (gzip), the serial console, devtmpfs, and the PVH entry QEMU's
	// microvm uses for an ELF vmlinux.
	// ACPI tables load only with PCI configured (ACPICA's PCI_CONFIG
	// region handler); without them no virtio device is found.
	if set["CONFIG_ACPI"] && !set["CONFIG_PCI"] {
		t.Error("CONFIG_ACPI without CONFIG_PCI: the kernel cannot load the ACPI tables that describe the virtio devices")
	}
	// `vm stop` presses the ACPI power button, which logind reads from
	// an input event device: without it the guest ignores the press and
	// is killed after the stop timeout, losing what it had not written.
	for _, o := range []string{"CONFIG_ACPI_BUTTON", "CONFIG_INPUT_EVDEV"} {
		if !set[o] {
			t.Errorf("%s is not set: the guest cannot hear vm stop's power button", o)
		}
	}
	for _, o := range []string{"CONFIG_EXT4_FS", "CONFIG_BLK_DEV_INITRD", "CONFIG_RD_GZIP", "CONFIG_SERIAL_8250_CONSOLE", "CONFIG_DEVTMPFS", "CONFIG_PVH", "CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES", "CONFIG_PRINTK_TIME"} {
		if !set[o] {
			t.Errorf("%s is not set", o)
		}
	}
}

func TestCacheKeyFollowsTheKernel(t *testing.T) {
	deps := fakeDeps(nil)
	key := func(o Options) string {
		t.Helper()
		o, err := o.withDefaults(deps)
		if err != nil {
			t.Fatal(err)
		}
		k, err := CacheKey(o)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	base := Options{Name: "x", CacheDir: "/c"}
	debian := key(base)
	micro := Options{Name: "x", CacheDir: "/c", Kernel: KernelMicrovm}
	microKey := key(micro)
	if microKey == debian {
		t.Error("the microvm and Debian kernels share a cache key")
	}
	saved := MicrovmConfig
	MicrovmConfig += "CONFIG_EXTRA=y\n"
	defer func() { MicrovmConfig = saved }()
	if key(micro) == microKey {
		t.Error("a changed kernel configuration keeps the image's cache key")
	}
	if key(base) != debian {
		t.Error("the kernel configuration changed the key of an image with Debian's kernel")
	}
	kernel := kernelCacheKey("bookworm", DefaultMirror)
	if kernelCacheKey("trixie", DefaultMirror) == kernel {
		t.Error("kernels of two suites share a cache key")
	}
}
