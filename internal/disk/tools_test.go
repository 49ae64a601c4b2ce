package disk

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"banger/internal/system"
	"banger/internal/testutil"
)

// These tests run the real e2fsprogs tools on image files in t.TempDir();
// they need no root and skip when the tools are missing.

func realManager() *Manager { return New(Deps{Runner: system.Plain()}) }

// toolPath finds a tool also in the sbin directories a user's PATH may lack.
func toolPath(t testing.TB, name string) string {
	t.Helper()
	p, err := system.LookPath(name)
	if err != nil {
		t.Skipf("needs %s: %v", name, err)
	}
	return p
}

func debugfsCat(t *testing.T, image, path string) string {
	t.Helper()
	out, err := exec.Command(toolPath(t, "debugfs"), "-R", "cat "+path, image).Output()
	if err != nil {
		t.Fatalf("debugfs cat %s: %v", path, err)
	}
	return string(out)
}

func debugfsStat(t *testing.T, image, path string) (inode, bool) {
	t.Helper()
	out, _ := exec.Command(toolPath(t, "debugfs"), "-R", "stat "+path, image).Output()
	return parseStat(string(out))
}

func fsck(t *testing.T, image string) {
	t.Helper()
	if out, err := exec.Command(toolPath(t, "e2fsck"), "-f", "-n", image).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck -fn %s: %v\n%s", image, err, out)
	}
}

// testImage makes a small ext4 root image from a tree that looks like a
// Debian rootfs where it matters: an old hostname, resolv.conf as a
// symlink, the image's own RSA host key, no /root/.ssh.
func testImage(t *testing.T, size string) string {
	t.Helper()
	testutil.RequireTool(t, "mkfs.ext4", "debugfs", "e2fsck")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	for _, d := range []string{"etc/ssh", "root", "usr/bin"} {
		os.MkdirAll(filepath.Join(tree, d), 0o755)
	}
	os.WriteFile(filepath.Join(tree, "etc/hostname"), []byte("debian\n"), 0o644)
	os.WriteFile(filepath.Join(tree, "etc/ssh/ssh_host_rsa_key"), []byte("image-wide secret\n"), 0o600)
	os.WriteFile(filepath.Join(tree, "usr/bin/tool"), []byte("#!/bin/sh\n"), 0o755)
	os.Symlink("../run/systemd/resolve/stub-resolv.conf", filepath.Join(tree, "etc/resolv.conf"))
	img := filepath.Join(dir, "rootfs.ext4")
	if out, err := exec.Command(toolPath(t, "mkfs.ext4"), "-q", "-d", tree, img, size).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 -d: %v\n%s", err, out)
	}
	return img
}

func TestWriteIdentityIntoImage(t *testing.T) {
	img := testImage(t, "32M")
	m := realManager()
	id := testIdentity(t)
	if err := m.WriteIdentity(context.Background(), img, id); err != nil {
		t.Fatal(err)
	}
	fsck(t, img)
	if got := debugfsCat(t, img, "/etc/hostname"); got != "dev\n" {
		t.Errorf("hostname = %q", got)
	}
	if got := debugfsCat(t, img, "/root/.ssh/authorized_keys"); got != string(id.AuthorizedKeys) {
		t.Errorf("authorized_keys = %q", got)
	}
	if got := debugfsCat(t, img, "/etc/ssh/ssh_host_ed25519_key"); got != string(id.HostKeyPrivate) {
		t.Errorf("host key = %q", got)
	}
	if got := debugfsCat(t, img, "/etc/resolv.conf"); !strings.Contains(got, "nameserver 10.77.0.1\n") {
		t.Errorf("resolv.conf = %q", got)
	}
	for path, want := range map[string]inode{
		"/root/.ssh":                        {Type: "directory", Perm: 0o700},
		"/root/.ssh/authorized_keys":        {Type: "regular", Perm: 0o600},
		"/etc/ssh/ssh_host_ed25519_key":     {Type: "regular", Perm: 0o600},
		"/etc/ssh/ssh_host_ed25519_key.pub": {Type: "regular", Perm: 0o644},
		"/etc/resolv.conf":                  {Type: "regular", Perm: 0o644},
	} {
		got, ok := debugfsStat(t, img, path)
		if !ok || got.Type != want.Type || got.Perm != want.Perm || got.UID != 0 || got.GID != 0 {
			t.Errorf("%s = %+v (exists %v), want %+v owned by root", path, got, ok, want)
		}
	}
	if _, ok := debugfsStat(t, img, "/etc/ssh/ssh_host_rsa_key"); ok {
		t.Error("the image's shared RSA host key is still there")
	}
	if got := debugfsCat(t, img, "/usr/bin/tool"); got != "#!/bin/sh\n" {
		t.Errorf("unrelated file changed: %q", got)
	}

	// Writing again (a renamed VM, a new key) replaces every file in place.
	id2 := testIdentity(t)
	id2.Hostname = "web"
	if err := m.WriteIdentity(context.Background(), img, id2); err != nil {
		t.Fatal(err)
	}
	fsck(t, img)
	if got := debugfsCat(t, img, "/etc/hostname"); got != "web\n" {
		t.Errorf("hostname after rewrite = %q", got)
	}
	if got := debugfsCat(t, img, "/etc/ssh/ssh_host_ed25519_key.pub"); got != string(id2.HostKeyPublic) {
		t.Errorf("host public key after rewrite = %q", got)
	}
}

func TestWriteIdentityRejectsNonExt4(t *testing.T) {
	testutil.RequireTool(t, "debugfs")
	p := sizedFile(t, 8<<20)
	err := realManager().WriteIdentity(context.Background(), p, testIdentity(t))
	if err == nil || !strings.Contains(err.Error(), "ext4") {
		t.Errorf("err = %v", err)
	}
}

func TestCreateWorkReal(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "debugfs", "e2fsck")
	p := filepath.Join(t.TempDir(), "work.ext4")
	if err := realManager().CreateWork(context.Background(), p, 1<<30); err != nil {
		t.Fatal(err)
	}
	fsck(t, p)
	out, err := exec.Command(toolPath(t, "debugfs"), "-R", "stats", p).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "Filesystem volume name:   banger-work") {
		t.Errorf("label missing:\n%.300s", out)
	}
	if n, _ := ParseFSSize(out); n != 1<<30 {
		t.Errorf("filesystem size %d, want 1 GiB", n)
	}
	if root, ok := debugfsStat(t, p, "/"); !ok || root.UID != 0 {
		t.Errorf("root directory = %+v, want owned by root", root)
	}
	if a := allocated(t, p); a > 4<<20 {
		t.Errorf("1 GiB work disk allocates %d bytes, want at most 4 MiB (journal and inode tables unwritten)", a)
	}
}

func TestGrowKeepsData(t *testing.T) {
	img := testImage(t, "32M")
	// A file written into the image before growth, the way a guest would
	// leave one, must read back the same afterwards.
	payload := filepath.Join(t.TempDir(), "payload")
	data := strings.Repeat("banger keeps this\n", 20000)
	os.WriteFile(payload, []byte(data), 0o644)
	if out, err := exec.Command(toolPath(t, "debugfs"), "-w", "-R", "write "+payload+" /root/kept", img).CombinedOutput(); err != nil {
		t.Fatalf("debugfs write: %v\n%s", err, out)
	}
	m := realManager()
	if err := m.Grow(context.Background(), img, 256<<20); err != nil {
		t.Fatal(err)
	}
	fsck(t, img)
	if n, err := m.FSSize(context.Background(), img); err != nil || n != 256<<20 {
		t.Errorf("filesystem size after growth = %d, %v", n, err)
	}
	if got := debugfsCat(t, img, "/root/kept"); got != data {
		t.Errorf("file written before growth reads back %d bytes, want %d", len(got), len(data))
	}
	if err := m.Grow(context.Background(), img, 128<<20); err == nil {
		t.Error("shrink accepted")
	}
	if st, _ := os.Stat(img); st.Size() != 256<<20 {
		t.Errorf("refused shrink changed the size to %d", st.Size())
	}
}
