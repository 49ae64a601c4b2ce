package bootstrap_test

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"banger/internal/bootstrap"
	"banger/internal/testutil"
)

// TestGuestImage bootstraps a real image (or reuses the cached one) and
// checks what the other tiers rely on.
func TestGuestImage(t *testing.T) {
	res := testutil.GuestImage(t)
	testutil.RequireTool(t, "e2fsck", "debugfs")
	t.Logf("image: %+v", res)

	if out, err := exec.Command("e2fsck", "-fn", res.Rootfs).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn %s: %v\n%s", res.Rootfs, err, out)
	}
	label, err := exec.Command("e2label", res.Rootfs).Output()
	if err != nil || strings.TrimSpace(string(label)) != bootstrap.RootLabel {
		t.Errorf("rootfs label = %q (%v), want %s", label, err, bootstrap.RootLabel)
	}
	debugfs := func(cmd string) string {
		out, err := exec.Command("debugfs", "-R", cmd, res.Rootfs).CombinedOutput()
		if err != nil {
			t.Fatalf("debugfs %s: %v\n%s", cmd, err, out)
		}
		return string(out)
	}
	for _, p := range []string{"/usr/sbin/sshd", "/sbin/init", "/lib/modules/" + res.KernelVersion + "/modules.dep", "/work", "/etc/ssh/sshd_config.d/banger.conf"} {
		if out := debugfs("stat " + p); strings.Contains(out, "File not found") {
			t.Errorf("%s missing from the rootfs", p)
		}
	}
	if out := debugfs("ls /etc/ssh"); strings.Contains(out, "ssh_host_") {
		t.Errorf("rootfs carries SSH host keys:\n%s", out)
	}
	if out := debugfs("cat /etc/machine-id"); strings.TrimSpace(out[strings.Index(out, "\n")+1:]) != "" && !strings.HasPrefix(strings.TrimSpace(out), "debugfs") {
		t.Errorf("/etc/machine-id is not empty: %q", out)
	}

	f, err := elf.Open(res.Vmlinux)
	if err != nil {
		t.Fatalf("vmlinux is not ELF: %v", err)
	}
	f.Close()

	names := initrdNames(t, res.Initrd)
	for _, m := range []string{"virtio_mmio", "virtio_blk", "virtio_net", "vmw_vsock_virtio_transport", "virtio_rng"} {
		p := "lib/modules/" + res.KernelVersion + "/" + m + ".ko"
		if !names[p] {
			t.Errorf("initrd lacks %s", p)
		}
	}
	for _, p := range []string{"init", "bin/busybox", "dev/console"} {
		if !names[p] {
			t.Errorf("initrd lacks %s", p)
		}
	}
	manifest, err := os.ReadFile(res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	if got := bootstrap.SHA256Hex(manifest); got != res.ManifestSHA256 {
		t.Errorf("manifest sha256 = %s, result says %s", got, res.ManifestSHA256)
	}
	pkgs, err := bootstrap.ParseManifest(manifest)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(manifest, []byte("\nopenssh-server ")) || len(pkgs) != res.Packages {
		t.Errorf("manifest has %d packages (result says %d), openssh-server listed: %v", len(pkgs), res.Packages, bytes.Contains(manifest, []byte("\nopenssh-server ")))
	}
	if filepath.Dir(res.Rootfs) != filepath.Dir(res.Kernel) {
		t.Errorf("artifacts in different directories: %s, %s", res.Rootfs, res.Kernel)
	}
}

func initrdNames(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("initrd is not gzip: %v", err)
	}
	cr := bootstrap.NewCPIOReader(zr)
	names := map[string]bool{}
	for {
		h, err := cr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading initrd cpio: %v", err)
		}
		names[h.Name] = true
	}
	return names
}
