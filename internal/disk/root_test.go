package disk

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"banger/internal/system"
	"banger/internal/testutil"
)

// mountScratch makes a filesystem of type fstype in a loop file in
// t.TempDir() and mounts it in the test's private mount namespace (the
// caller runs inside testutil.InNetns, which also unshares mounts). It
// returns the mount point; cleanup unmounts it.
func mountScratch(t *testing.T, fstype string) string {
	t.Helper()
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, fstype+".img"), filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	var mkfs []string
	switch fstype {
	case "xfs":
		testutil.RequireTool(t, "mkfs.xfs")
		mkfs = []string{"mkfs.xfs", "-q", "-m", "reflink=1", img}
	case "btrfs":
		testutil.RequireTool(t, "mkfs.btrfs")
		mkfs = []string{"mkfs.btrfs", "-q", img}
	case "ext4":
		mkfs = []string{"mkfs.ext4", "-q", img}
	}
	if fstype != "tmpfs" {
		if err := os.WriteFile(img, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(img, 1<<30); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(toolPath(t, mkfs[0]), mkfs[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", mkfs, err, out)
		}
	}
	args := []string{"-o", "loop", img, mnt}
	if fstype == "tmpfs" {
		args = []string{"-t", "tmpfs", "-o", "size=1g", "tmpfs", mnt}
	}
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		t.Skipf("cannot mount %s here: %v: %s", fstype, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}

var physRE = regexp.MustCompile(`^\s*\d+:\s+\d+\.\.\s*\d+:\s+(\d+)\.\.\s*\d+:`)

// physicalExtents returns the physical start blocks reported by
// `filefrag -v` and whether every extent is flagged shared.
func physicalExtents(t *testing.T, p string) ([]string, bool) {
	t.Helper()
	out, err := exec.Command("filefrag", "-v", p).Output()
	if err != nil {
		t.Fatalf("filefrag -v %s: %v", p, err)
	}
	var starts []string
	shared := true
	for _, l := range strings.Split(string(out), "\n") {
		if m := physRE.FindStringSubmatch(l); m != nil {
			starts = append(starts, m[1])
			shared = shared && strings.Contains(l, "shared")
		}
	}
	return starts, shared
}

func TestReflinkCloneSharesExtents(t *testing.T) {
	if !testutil.InNetns(t) {
		return
	}
	testutil.RequireTool(t, "filefrag")
	for _, fstype := range []string{"xfs", "btrfs"} {
		t.Run(fstype, func(t *testing.T) {
			mnt := mountScratch(t, fstype)
			src, dst := filepath.Join(mnt, "rootfs.ext4"), filepath.Join(mnt, "root.ext4")
			holeyFile(t, src, 512<<20, 0, 1<<20, 64<<20, 300<<20)
			if out, err := exec.Command("sync").CombinedOutput(); err != nil {
				t.Fatalf("sync: %v %s", err, out)
			}
			method, err := New(Deps{}).CloneRoot(context.Background(), src, dst)
			if err != nil {
				t.Fatal(err)
			}
			if method != Reflink {
				t.Fatalf("method = %s on %s, want reflink", method, fstype)
			}
			sameContent(t, src, dst)
			a, _ := physicalExtents(t, src)
			b, shared := physicalExtents(t, dst)
			if len(a) == 0 || strings.Join(a, ",") != strings.Join(b, ",") || !shared {
				t.Errorf("clone extents %v (shared %v), source %v: want the same shared blocks", b, shared, a)
			}
		})
	}
}

func TestSparseFallbackKeepsFilesSparse(t *testing.T) {
	if !testutil.InNetns(t) {
		return
	}
	for _, fstype := range []string{"ext4", "tmpfs"} {
		t.Run(fstype, func(t *testing.T) {
			mnt := mountScratch(t, fstype)
			src, dst := filepath.Join(mnt, "rootfs.ext4"), filepath.Join(mnt, "root.ext4")
			holeyFile(t, src, 512<<20, 0, 1<<20, 64<<20, 300<<20)
			method, err := New(Deps{}).CloneRoot(context.Background(), src, dst)
			if err != nil {
				t.Fatal(err)
			}
			if method != SparseCopy {
				t.Errorf("method = %s on %s, want sparse-copy", method, fstype)
			}
			sameContent(t, src, dst)
			if a := allocated(t, dst); a > 8<<20 {
				t.Errorf("clone of a 512 MiB file with 256 KiB of data allocates %d bytes", a)
			}
		})
	}
}

func TestGrowRestoresSnapshotOnFailure(t *testing.T) {
	if !testutil.InNetns(t) {
		return
	}
	mnt := mountScratch(t, "xfs")
	img := testImage(t, "32M")
	p := filepath.Join(mnt, "root.ext4")
	if _, err := New(Deps{}).CloneRoot(context.Background(), img, p); err != nil {
		t.Fatal(err)
	}
	// The real tools, except that resize2fs fails half way.
	f := &system.Fake{Handler: func(argv []string, stdin []byte) ([]byte, error) {
		if filepath.Base(argv[0]) == "resize2fs" {
			os.WriteFile(p, []byte("resize2fs scribbled here"), 0o600)
			return nil, errors.New("resize2fs crashed")
		}
		return system.Plain().Output(context.Background(), argv...)
	}}
	err := New(Deps{Runner: f}).Grow(context.Background(), p, 64<<20)
	if err == nil || !strings.Contains(err.Error(), "restored unchanged") {
		t.Fatalf("err = %v, want a restored disk", err)
	}
	// e2fsck touched the superblock before the snapshot, so compare what
	// matters: the old size, a clean filesystem, the files.
	if st, _ := os.Stat(p); st.Size() != 32<<20 {
		t.Errorf("size after restore = %d, want 32 MiB", st.Size())
	}
	fsck(t, p)
	if got := debugfsCat(t, p, "/etc/hostname"); got != "debian\n" {
		t.Errorf("hostname after restore = %q", got)
	}
	if entries, _ := os.ReadDir(mnt); len(entries) != 1 {
		t.Errorf("left in %s: %v", mnt, entries)
	}
}
