package disk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"banger/internal/system"
	"banger/internal/testutil"
)

// testLogger logs debug lines to the test's log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// mountAt mounts with `mount args... target` and unmounts at cleanup
// unless unmountAt did already.
func mountAt(t *testing.T, target string, args ...string) {
	t.Helper()
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", append(args, target)...).CombinedOutput(); err != nil {
		t.Skipf("cannot mount %v here: %v: %s", args, err, out)
	}
	t.Cleanup(func() { exec.Command("umount", target).Run() })
}

func unmountAt(t *testing.T, target string) {
	t.Helper()
	if out, err := exec.Command("umount", target).CombinedOutput(); err != nil {
		t.Fatalf("umount %s: %v: %s", target, err, out)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// writeTree makes files under root from a map of relative path to content.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(root, p)
		must(t, os.MkdirAll(filepath.Dir(full), 0o755))
		must(t, os.WriteFile(full, []byte(c), 0o644))
	}
}

// capNetRaw is a VFS v2 security.capability value granting cap_net_raw
// (bit 13) permitted and effective, as `setcap cap_net_raw+ep` writes it.
var capNetRaw = []byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// posixACL is a system.posix_acl_* value in the kernel's format: the
// owner rw, user uid r, group r, mask r, others nothing.
func posixACL(uid uint32) []byte {
	entry := func(tag, perm uint16, id uint32) []byte {
		return []byte{byte(tag), byte(tag >> 8), byte(perm), byte(perm >> 8), byte(id), byte(id >> 8), byte(id >> 16), byte(id >> 24)}
	}
	const undefined = 0xffffffff
	b := []byte{2, 0, 0, 0} // version
	b = append(b, entry(0x01, 6, undefined)...)
	b = append(b, entry(0x02, 4, uid)...)
	b = append(b, entry(0x04, 4, undefined)...)
	b = append(b, entry(0x10, 4, undefined)...)
	return append(b, entry(0x20, 0, undefined)...)
}

// flattenBase makes a base image with what the overlay changes will touch.
func flattenBase(t *testing.T, dir string) string {
	tree := filepath.Join(dir, "base")
	writeTree(t, tree, map[string]string{
		"etc/motd":                        "welcome\n",
		"etc/passwd":                      "root:x:0:0::/root:/bin/sh\n",
		"etc/hostname":                    "debian\n",
		"etc/becomes-dir":                 "a file now\n",
		"etc/ssh/ssh_host_rsa_key":        "image-wide secret\n",
		"etc/ssh/sshd_config":             "PermitRootLogin prohibit-password\n",
		"usr/bin/old":                     "#!/bin/sh\necho old\n",
		"usr/bin/keep":                    "#!/bin/sh\n",
		"usr/share/doc/a/README":          strings.Repeat("doc ", 3000),
		"usr/share/doc/a/sub/deep/x":      "x\n",
		"usr/share/doc/b/copyright":       "(c)\n",
		"usr/share/doc/b/big-xattr":       "an external xattr block\n",
		"var/cache/app/old1":              "1\n",
		"var/cache/app/sub/old2":          "2\n",
		"var/log/syslog":                  "log\n",
		"opt/olddir/f":                    "f\n",
		"home/user/file":                  "mine\n",
		"data/pair-a":                     "pair\n",
		"data/trio":                       "trio\n",
		"data/with-caps":                  "binary\n",
		"data/renamed-from":               "moves\n",
		"root/.profile":                   "PS1='# '\n",
		"srv/.keep":                       "",
		"usr/lib/x86_64-linux-gnu/lib.so": "ELF",
	})
	must(t, os.Link(filepath.Join(tree, "data/pair-a"), filepath.Join(tree, "data/pair-b")))
	must(t, os.Link(filepath.Join(tree, "data/trio"), filepath.Join(tree, "usr/share/doc/b/trio-link"))) // partner inside a deleted tree
	must(t, os.Symlink("usr/lib", filepath.Join(tree, "lib")))
	must(t, os.Symlink("../run/resolv.conf", filepath.Join(tree, "etc/resolv.conf")))
	must(t, os.Symlink("motd", filepath.Join(tree, "etc/motd-link")))
	must(t, unix.Mkfifo(filepath.Join(tree, "srv/base-fifo"), 0o600))
	must(t, os.Chmod(filepath.Join(tree, "root"), 0o700))
	must(t, os.Chmod(filepath.Join(tree, "var/log"), 0o755))
	must(t, os.Lchown(filepath.Join(tree, "home/user"), 1000, 1000))
	must(t, unix.Lsetxattr(filepath.Join(tree, "data/with-caps"), "security.capability", capNetRaw, 0))
	must(t, unix.Lsetxattr(filepath.Join(tree, "etc/motd"), "user.origin", []byte("base"), 0))
	must(t, unix.Lsetxattr(filepath.Join(tree, "usr/share/doc/b/big-xattr"), "user.big", []byte(strings.Repeat("v", 600)), 0))
	must(t, unix.Lsetxattr(filepath.Join(tree, "var/log"), "user.dir", []byte("base dir"), 0))
	// Fixed mtimes, so that what the overlay copies up is told apart.
	old := time.Date(2024, 1, 2, 3, 4, 5, 600, time.UTC)
	filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{unix.NsecToTimespec(old.UnixNano()), unix.NsecToTimespec(old.UnixNano())}, unix.AT_SYMLINK_NOFOLLOW)
		}
		return nil
	})
	img := filepath.Join(dir, "base.ext4")
	if out, err := exec.Command(toolPath(t, "mkfs.ext4"), "-q", "-d", tree, img, "128M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 -d: %v\n%s", err, out)
	}
	return img
}

// changeThroughOverlay makes, through the mounted overlay at root, every
// kind of change a guest makes.
func changeThroughOverlay(t *testing.T, root string) {
	p := func(rel string) string { return filepath.Join(root, rel) }
	appendTo := func(rel, s string) {
		f, err := os.OpenFile(p(rel), os.O_APPEND|os.O_WRONLY, 0)
		must(t, err)
		_, err = f.WriteString(s)
		must(t, err)
		must(t, f.Close())
	}
	// Changed and new files, new trees.
	appendTo("etc/motd", "changed in the VM\n")
	appendTo("data/pair-a", "only a changes\n") // breaks the base's hard link pair
	writeTree(t, root, map[string]string{
		"opt/app/bin/tool":                "#!/bin/sh\necho tool\n",
		"opt/app/share/a b \"q\".txt":     "odd name\n",
		"srv/new.txt":                     "new\n",
		"usr/lib/x86_64-linux-gnu/new.so": "ELF2",
	})
	must(t, os.MkdirAll(p("opt/app/empty"), 0o750))
	must(t, os.Chmod(p("opt/app/bin/tool"), 0o4755))
	big := make([]byte, 3<<20+123)
	for i := range big {
		big[i] = byte(i * 7 % 251)
	}
	must(t, os.WriteFile(p("srv/big.bin"), big, 0o640))
	sp, err := os.Create(p("srv/sparse.img"))
	must(t, err)
	must(t, sp.Truncate(64<<20))
	_, err = sp.WriteAt([]byte("tail"), 40<<20)
	must(t, err)
	must(t, sp.Close())
	// Deletions: a file, a tree (with an external xattr block and a hard
	// link whose partner lives on), one name of a hard link pair.
	must(t, os.Remove(p("usr/bin/old")))
	must(t, os.RemoveAll(p("usr/share/doc")))
	must(t, os.Rename(p("data/renamed-from"), p("data/renamed-to")))
	// A replaced directory (opaque), a file that becomes a directory and a
	// directory that becomes a file.
	must(t, os.RemoveAll(p("var/cache/app")))
	must(t, os.MkdirAll(p("var/cache/app/fresh"), 0o700))
	must(t, os.WriteFile(p("var/cache/app/fresh/f"), []byte("fresh\n"), 0o600))
	must(t, os.Remove(p("etc/becomes-dir")))
	must(t, os.Mkdir(p("etc/becomes-dir"), 0o755))
	must(t, os.WriteFile(p("etc/becomes-dir/inside"), []byte("in\n"), 0o644))
	must(t, os.RemoveAll(p("opt/olddir")))
	must(t, os.WriteFile(p("opt/olddir"), []byte("now a file\n"), 0o644))
	// Metadata only: chmod, chown, a directory's mode and xattrs.
	must(t, os.Chmod(p("etc/passwd"), 0o600))
	must(t, os.Lchown(p("home/user/file"), 1001, 1002))
	must(t, os.Chmod(p("var/log"), 0o2750))
	must(t, unix.Lsetxattr(p("var/log"), "user.added", []byte("upper"), 0))
	must(t, unix.Lremovexattr(p("var/log"), "user.dir"))
	must(t, unix.Lsetxattr(p("srv/new.txt"), "user.note", []byte{0, 1, 2, 0xff}, 0))
	must(t, unix.Lsetxattr(p("srv/new.txt"), "trusted.banger", []byte("root only"), 0))
	// POSIX ACLs (user 1000 may read; a default for a new directory),
	// which ext4 stores in its own format and debugfs translates.
	must(t, unix.Lsetxattr(p("srv/new.txt"), "system.posix_acl_access", posixACL(1000), 0))
	must(t, os.Mkdir(p("srv/shared"), 0o770))
	must(t, unix.Lsetxattr(p("srv/shared"), "system.posix_acl_default", posixACL(1000), 0))
	// Symlinks: new, long (a slow symlink), one that changes target.
	must(t, os.Symlink("../etc/motd", p("srv/link")))
	long := strings.Repeat("very-long-target/", 8) + "end"
	must(t, os.Symlink(long, p("srv/long-link")))
	must(t, os.Remove(p("etc/motd-link")))
	must(t, os.Symlink("passwd", p("etc/motd-link")))
	must(t, os.Lchown(p("srv/link"), 7, 8))
	// Hard links: a new file with three names, a link to a base file.
	must(t, os.WriteFile(p("srv/h1"), []byte("three names\n"), 0o644))
	must(t, os.Link(p("srv/h1"), p("srv/h2")))
	must(t, os.Link(p("srv/h1"), p("opt/app/h3")))
	must(t, os.Link(p("etc/hostname"), p("srv/hostname-link")))
	// A file with capabilities: setcap when installed, else the xattr.
	if setcap, err := exec.LookPath("setcap"); err == nil {
		if out, err := exec.Command(setcap, "cap_net_raw+ep", p("opt/app/bin/tool")).CombinedOutput(); err != nil {
			t.Fatalf("setcap: %v: %s", err, out)
		}
	} else {
		must(t, unix.Lsetxattr(p("opt/app/bin/tool"), "security.capability", capNetRaw, 0))
	}
	appendTo("data/with-caps", "patched\n") // a write drops the image's capability
	// Special files: a FIFO, a device node, a socket, a deleted base FIFO.
	must(t, unix.Mkfifo(p("srv/fifo"), 0o620))
	must(t, unix.Mknod(p("srv/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, unix.Mknod(p("srv/disk"), unix.S_IFBLK|0o660, int(unix.Mkdev(259, 70000))))
	l, err := net.Listen("unix", p("srv/sock"))
	must(t, err)
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	must(t, os.Remove(p("srv/base-fifo")))
	// A change below a symlinked directory lands in its target.
	must(t, os.WriteFile(p("lib/via-link"), []byte("through /lib\n"), 0o644))
}

// listing renders the tree at root canonically, one line per file: path,
// type, mode, owner, mtime, size and content hash, link target, device,
// extended attributes, and the hard link group (the first path with the
// same inode). Link counts, sizes of directories and access times are left
// out: overlayfs reports the lower layer's for files it shows.
func listing(t *testing.T, root string) []string {
	t.Helper()
	type rec struct {
		path string
		line string
		key  [2]uint64
		dir  bool
	}
	var recs []rec
	group := map[[2]uint64][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s mode=%o uid=%d gid=%d mtime=%d.%09d", rel, st.Mode, st.Uid, st.Gid, st.Mtim.Sec, st.Mtim.Nsec)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			io.Copy(h, f)
			f.Close()
			fmt.Fprintf(&b, " size=%d sha=%x", st.Size, h.Sum(nil)[:8])
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " target=%q", target)
		case unix.S_IFCHR, unix.S_IFBLK:
			fmt.Fprintf(&b, " rdev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		buf := make([]byte, 65536)
		n, err := unix.Llistxattr(p, buf)
		if err != nil {
			return fmt.Errorf("listing xattrs of %s: %w", p, err)
		}
		if n > 0 {
			names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
			slices.Sort(names)
			for _, name := range names {
				v := make([]byte, 65536)
				n, err := unix.Lgetxattr(p, name, v)
				if err != nil {
					return fmt.Errorf("reading xattr %s of %s: %w", name, p, err)
				}
				fmt.Fprintf(&b, " %s=%s", name, hex.EncodeToString(v[:n]))
			}
		}
		key := [2]uint64{st.Dev, st.Ino}
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		if !isDir {
			group[key] = append(group[key], rel)
		}
		recs = append(recs, rec{rel, b.String(), key, isDir})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, r := range recs {
		l := r.line
		if g := group[r.key]; !r.dir && len(g) > 1 {
			l += " links=" + slices.Min(g)
		}
		lines = append(lines, l)
	}
	slices.Sort(lines)
	return lines
}

// TestFlattenMatchesOverlay is the decisive test of Flatten: changes made
// through the kernel's overlayfs over a base and a layer, then flattened,
// must read back exactly as the overlay showed them.
func TestFlattenMatchesOverlay(t *testing.T) {
	if !testutil.InNetns(t) { // a private mount namespace, as root
		return
	}
	testutil.RequireTool(t, "mkfs.ext4", "debugfs", "e2fsck", "mount", "umount")
	ctx := context.Background()
	dir := t.TempDir()
	base := flattenBase(t, dir)
	baseSum := testutil.FileSHA256(t, base)
	m := New(Deps{Runner: system.Plain(), Log: testLogger(t)})
	layer := filepath.Join(dir, "layer.ext4")
	must(t, m.MakeLayer(ctx, layer, 512<<20))
	must(t, m.WriteLayerIdentity(ctx, base, layer, testIdentity(t)))

	lower, lmnt, merged := filepath.Join(dir, "lower"), filepath.Join(dir, "layer"), filepath.Join(dir, "merged")
	mountAt(t, lower, "-o", "loop,ro", base)
	mountAt(t, lmnt, "-o", "loop", layer)
	mountAt(t, merged, "-t", "overlay", "overlay", "-o",
		"lowerdir="+lower+",upperdir="+lmnt+"/upper,workdir="+lmnt+"/work,redirect_dir=off,metacopy=off,index=off")
	changeThroughOverlay(t, merged)
	want := listing(t, merged)
	unmountAt(t, merged)
	unmountAt(t, lmnt)
	unmountAt(t, lower)
	fsck(t, layer)
	layerSum := testutil.FileSHA256(t, layer)
	// The kernel wrote what Flatten must handle: whiteouts (shared ones
	// are hard links of one inode), opaque directories, capabilities.
	nodes, err := m.walk(ctx, layer, []string{"/upper"})
	must(t, err)
	ups, err := upperFiles(nodes)
	must(t, err)
	kinds := map[string]int{}
	for _, u := range ups {
		switch {
		case u.St.isWhiteout():
			kinds["whiteout"]++
		case u.Opaque:
			kinds["opaque"]++
		case slices.Contains(xattrNames(u.St), "security.capability"):
			kinds["capability"]++
		}
	}
	if kinds["whiteout"] < 5 || kinds["opaque"] < 2 || kinds["capability"] < 1 {
		t.Fatalf("the overlay's upper has %v, want at least 5 whiteouts, 2 opaque directories and a file with capabilities", kinds)
	}

	flat := filepath.Join(dir, "flat.ext4")
	start := time.Now()
	must(t, m.Flatten(ctx, base, layer, flat))
	t.Logf("Flatten took %s", time.Since(start).Round(time.Millisecond))
	fsck(t, flat)
	fmnt := filepath.Join(dir, "flat")
	mountAt(t, fmnt, "-o", "loop,ro", flat)
	got := listing(t, fmnt)
	unmountAt(t, fmnt)
	if os.Getenv("BANGER_TEST_SHOW_LISTING") != "" {
		t.Logf("overlay listing:\n%s", strings.Join(want, "\n"))
	}
	if diff := cmp.Diff(strings.Join(want, "\n"), strings.Join(got, "\n")); diff != "" {
		t.Errorf("flattened image differs from the overlay (-overlay +flattened):\n%s", diff)
	}
	if testutil.FileSHA256(t, base) != baseSum {
		t.Error("the base image changed")
	}
	if testutil.FileSHA256(t, layer) != layerSum {
		t.Error("Flatten changed the layer")
	}
	if entries, _ := os.ReadDir(dir); slices.ContainsFunc(entries, func(e os.DirEntry) bool { return strings.Contains(e.Name(), tempMarker) }) {
		t.Errorf("temporary files left in %s: %v", dir, entries)
	}
	if err := m.Flatten(ctx, base, layer, flat); !errors.Is(err, fs.ErrExist) {
		t.Errorf("flattening onto an existing file: err = %v, want ErrExist", err)
	}
}

// TestFlattenAptSizedUpper flattens an apt-install-sized layer over a
// real rootfs: about 4,700 new files and 70 MiB copied from the host's
// Python and Perl libraries, up to 200 dpkg file lists changed, two trees
// deleted. It checks the result against the overlay and logs the time. It
// runs as root when BANGER_BENCH_ROOTFS names a root file system image
// (e.g. one in the guest image cache).
func TestFlattenAptSizedUpper(t *testing.T) {
	src := os.Getenv("BANGER_BENCH_ROOTFS")
	if src == "" {
		t.Skip("benchmark: set BANGER_BENCH_ROOTFS to a rootfs image (e.g. /var/cache/banger-test/images/*/rootfs.ext4)")
	}
	if !testutil.InNetns(t) {
		return
	}
	testutil.RequireTool(t, "mkfs.ext4", "debugfs", "e2fsck", "mount", "umount", "cp")
	ctx := context.Background()
	dir := t.TempDir()
	base := filepath.Join(dir, "base.ext4")
	if _, err := cloneFile(ctx, src, base, reflinkOrCopy); err != nil {
		t.Fatal(err)
	}
	m := New(Deps{Runner: system.Plain(), Log: testLogger(t)})
	layer := filepath.Join(dir, "layer.ext4")
	must(t, m.MakeLayer(ctx, layer, 8<<30))
	must(t, m.WriteLayerIdentity(ctx, base, layer, testIdentity(t)))
	lower, lmnt, merged := filepath.Join(dir, "lower"), filepath.Join(dir, "layer"), filepath.Join(dir, "merged")
	mountAt(t, lower, "-o", "loop,ro", base)
	mountAt(t, lmnt, "-o", "loop", layer)
	mountAt(t, merged, "-t", "overlay", "overlay", "-o",
		"lowerdir="+lower+",upperdir="+lmnt+"/upper,workdir="+lmnt+"/work,redirect_dir=off,metacopy=off,index=off")
	for from, to := range map[string]string{"/usr/lib/python3": "usr/lib/python3-bench", "/usr/share/perl": "usr/share/perl-bench"} {
		if out, err := exec.Command("cp", "-a", from, filepath.Join(merged, to)).CombinedOutput(); err != nil {
			t.Skipf("copying %s as the installed package: %v: %s", from, err, out)
		}
	}
	infos, _ := filepath.Glob(filepath.Join(merged, "var/lib/dpkg/info/*.list"))
	for i, p := range infos {
		if i == 200 {
			break
		}
		f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
		must(t, err)
		f.WriteString("/usr/lib/python3-bench\n")
		f.Close()
	}
	for _, d := range []string{"usr/share/man", "usr/share/locale"} {
		must(t, os.RemoveAll(filepath.Join(merged, d)))
	}
	want := listing(t, merged)
	unmountAt(t, merged)
	unmountAt(t, lmnt)
	unmountAt(t, lower)

	flat := filepath.Join(dir, "flat.ext4")
	start := time.Now()
	must(t, m.Flatten(ctx, base, layer, flat))
	took := time.Since(start)
	fsck(t, flat)
	fmnt := filepath.Join(dir, "flat")
	mountAt(t, fmnt, "-o", "loop,ro", flat)
	got := listing(t, fmnt)
	unmountAt(t, fmnt)
	if diff := cmp.Diff(strings.Join(want, "\n"), strings.Join(got, "\n")); diff != "" {
		t.Errorf("flattened image differs from the overlay (-overlay +flattened):\n%s", diff)
	}
	t.Logf("Flatten of %d files over %s: %s (layer allocates %d MiB, flattened image %d MiB)",
		len(want), src, took.Round(time.Millisecond), allocated(t, layer)>>20, allocated(t, flat)>>20)
}
