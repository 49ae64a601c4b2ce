package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"banger/internal/api"
	"banger/internal/disk"
	"banger/internal/store"
	"banger/internal/system"
	"banger/internal/testutil"
	"banger/internal/vm"
)

// loopData puts the env's data directory (images and VM disks) on a
// loop-mounted file system of its own: "ext4", the file system most
// workstations have and one without reflinks, or "xfs" with reflinks. The
// daemon is stopped and its VMMs ended before it is unmounted.
func (e *env) loopData(tb testing.TB, fstype, size string) string {
	tb.Helper()
	mkfs := map[string][]string{"ext4": {"mkfs.ext4", "-q", "-F"}, "xfs": {"mkfs.xfs", "-q", "-m", "reflink=1"}}[fstype]
	testutil.RequireTool(tb, mkfs[0], "mount", "umount")
	img := filepath.Join(tb.TempDir(), "data."+fstype)
	dir := filepath.Join(e.home, fstype+"-data")
	for _, argv := range [][]string{{"truncate", "-s", size, img}, append(mkfs, img), {"mkdir", "-p", dir}} {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			tb.Fatalf("%v: %v: %s", argv, err, out)
		}
	}
	if out, err := exec.Command("mount", "-o", "loop", img, dir).CombinedOutput(); err != nil {
		tb.Skipf("host tier: cannot loop-mount %s here: %v: %s", fstype, err, out)
	}
	tb.Cleanup(func() {
		e.teardownNetns()
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			tb.Errorf("unmounting %s: %v: %s (something banger started still holds it)", dir, err, out)
			_ = exec.Command("umount", "-l", dir).Run()
		}
	})
	e.vars = append(e.vars, "XDG_DATA_HOME="+filepath.Join(dir, "data"))
	return dir
}

// usedBytes is what a file system has allocated, as df counts it.
func usedBytes(t testing.TB, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize
}

func (e *env) images() []api.Image {
	e.t.Helper()
	var imgs []api.Image
	if err := json.Unmarshal([]byte(e.must("image", "list", "-o", "json")), &imgs); err != nil {
		e.t.Fatal(err)
	}
	return imgs
}

// TestSharedBaseOnExt4 is issue 15's shared base: on ext4 ten VMs share
// one read-only image, each writing only to its own layer; the image
// cannot be removed under them; a commit flattens into a standalone image;
// and a VM in the layout of the release before layers still starts.
func TestSharedBaseOnExt4(t *testing.T) {
	e := newGuestEnv(t)
	mnt := e.loopData(t, "ext4", "12G")
	e.must("image", "bootstrap", "base")
	if out := e.must("doctor"); !strings.Contains(out, "has no reflinks: a new VM's root is a sparse layer") {
		t.Errorf("doctor does not say VMs get layers on ext4:\n%s", out)
	}

	// Ten VMs, made stopped: what they take right after create.
	before := usedBytes(t, mnt)
	names := make([]string, 10)
	for i := range names {
		names[i] = fmt.Sprintf("v%d", i)
		e.must("vm", "create", names[i], "--no-start")
	}
	perVM := (usedBytes(t, mnt) - before) / int64(len(names))
	t.Logf("disk use per VM right after create on ext4: %.2f MiB (target at most 16 MiB)", float64(perVM)/(1<<20))
	if perVM > 16<<20 {
		t.Errorf("each VM takes %d bytes right after create, want at most 16 MiB", perVM)
	}
	for _, n := range names {
		if v := e.vm(n); v.Layout != string(vm.Layered) || filepath.Base(v.RootDisk) != "layer.ext4" {
			t.Errorf("%s: layout %q, root %s; want layered", n, v.Layout, v.RootDisk)
		}
	}

	// Each VM's changes are its own.
	e.must("vm", "start", "v0")
	e.must("vm", "start", "v1")
	e.ssh("v0", "echo mine > /root/v0-only && rm /etc/motd && mkdir -p /opt/made && echo x > /opt/made/file && sync")
	if got := e.ssh("v1", "cat /root/v0-only 2>&1; test -e /etc/motd && echo motd-here; hostname"); strings.Contains(got, "mine") || !strings.Contains(got, "motd-here") || !strings.HasSuffix(got, "v1") {
		t.Errorf("v1 sees v0's changes or lacks its own identity: %q", got)
	}
	if got := e.ssh("v0", "findmnt -no FSTYPE /; cat /root/v0-only; hostname"); got != "overlay\nmine\nv0" {
		t.Errorf("v0: %q, want its overlay root, its file and its name", got)
	}
	v0ID := e.ssh("v0", "cat /etc/machine-id")

	// The room for v1's changes grows while it is stopped; its data stays.
	// (statfs of an overlay reports its upper file system: the layer.)
	e.ssh("v1", "echo v1-data > /root/v1-only && sync")
	sizeOfRoot := func() int64 {
		var n int64
		if _, err := fmt.Sscan(e.ssh("v1", "df -B1 --output=size / | tail -1"), &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	was := sizeOfRoot()
	e.must("vm", "stop", "v1")
	e.must("vm", "resize", "v1", "--root-size", "3G")
	e.must("vm", "start", "v1")
	if now := sizeOfRoot(); now <= was || now > 3<<30 || now < 2900<<20 {
		t.Errorf("root of v1 after resize --root-size 3G: %d bytes (was %d)", now, was)
	}
	if got := e.ssh("v1", "cat /root/v1-only"); got != "v1-data" {
		t.Errorf("v1 lost its data in the resize: %q", got)
	}

	// The image is in use: removing it is refused and names its VMs.
	_, errOut, code := e.banger("image", "rm", "base")
	if code == 0 || !strings.Contains(errOut, "v0") || !strings.Contains(errOut, "v9") {
		t.Errorf("image rm under ten VMs: exit %d, stderr %q", code, errOut)
	}

	// A commit flattens v0 into a standalone image: its changes are in it,
	// its identity is not, and it boots without the image it came from.
	e.must("vm", "stop", "v0")
	e.must("image", "commit", "v0", "snap")
	for _, n := range names {
		e.must("vm", "rm", n, "--force")
	}
	e.must("vm", "create", "c", "--image", "snap")
	e.must("image", "rm", "base")
	e.must("vm", "restart", "c")
	got := e.ssh("c", "cat /root/v0-only /opt/made/file; test -e /etc/motd || echo no-motd; hostname; cat /etc/machine-id")
	if lines := strings.Split(got, "\n"); len(lines) != 5 || lines[0] != "mine" || lines[1] != "x" || lines[2] != "no-motd" || lines[3] != "c" || lines[4] == v0ID {
		t.Errorf("VM of the committed image: %q, want v0's changes under its own name and machine-id (v0's was %s)", got, v0ID)
	}

	t.Run("previous layout still starts", func(t *testing.T) {
		oldLayoutStarts(e.with(t), "c")
	})
	e.must("vm", "rm", "c", "--force")
	e.must("image", "rm", "snap")
	left, err := filepath.Glob(filepath.Join(mnt, "data", "banger", "vms", "*"))
	imgs, err2 := filepath.Glob(filepath.Join(mnt, "data", "banger", "images", "*"))
	if left = append(left, imgs...); err != nil || err2 != nil || len(left) != 0 {
		t.Errorf("left in the data directory after removing every VM and image: %v %v", left, err)
	}
}

// oldLayoutStarts turns the layered VM name into a VM of the release
// before layers (its own root disk, no layout recorded), as an upgrade
// finds it, and checks that it starts and keeps its data.
func oldLayoutStarts(e *env, name string) {
	t := e.t
	e.ssh(name, "echo kept > /root/before-upgrade && sync")
	e.must("vm", "stop", name)
	v := e.vm(name)
	e.stopDaemon()

	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(e.home, "state", "banger", "banger.db"))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := st.VM(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	m := disk.New(disk.Deps{Runner: system.Plain(), Log: slog.New(slog.DiscardHandler)})
	if err := m.Repair(ctx, rec.LayerDisk()); err != nil {
		t.Fatal(err)
	}
	if err := m.Flatten(ctx, rec.Base, rec.LayerDisk(), rec.RootDisk()); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(rec.LayerDisk()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	// Migration 0004 gives the previous release's rows this layout.
	db, err := sql.Open("sqlite", filepath.Join(e.home, "state", "banger", "banger.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE vms SET layout = 'clone' WHERE name = ?`, name); err != nil {
		t.Fatal(err)
	}
	db.Close()

	start := time.Now()
	e.must("vm", "start", name)
	t.Logf("the previous release's VM started in %s", time.Since(start).Round(time.Millisecond))
	if got := e.vm(name); got.Layout != string(vm.Clone) || got.RootDisk != rec.RootDisk() || got.IP != v.IP {
		t.Errorf("after the upgrade: layout %q, root %s, address %s; want clone, %s, %s", got.Layout, got.RootDisk, got.IP, rec.RootDisk(), v.IP)
	}
	if got := e.ssh(name, "cat /root/before-upgrade; findmnt -no FSTYPE /; hostname"); got != "kept\next4\n"+name {
		t.Errorf("the previous release's VM: %q, want its data on its own ext4 root", got)
	}
}

// TestBundleOnlyHost is issue 15's runtime bundle: on a machine that has
// only an installed bundle (no mmdebstrap, no images), vm create boots the
// bundle's kernel and root file system with the bundle's VMM.
func TestBundleOnlyHost(t *testing.T) {
	builder := newGuestEnv(t)
	work := t.TempDir()
	dir, build, dest := filepath.Join(work, "runtime"), filepath.Join(work, "build"), filepath.Join(work, "installed")
	builder.must("internal", "runtime-bundle", "--dir", dir, "--build", build)
	builder.must("runtime", "install", "--manifest", filepath.Join(build, "runtime-bundle.toml"), "--dest", dest)
	builder.teardownNetns()

	e := newGuestEnv(t)
	// No bootstrap cache, no mmdebstrap, no VMM named: only the bundle.
	if err := os.Remove(filepath.Join(e.home, "cache", "banger", "bootstrap")); err != nil {
		t.Fatal(err)
	}
	var keep []string
	for _, kv := range e.vars {
		if !strings.HasPrefix(kv, "BANGER_VMM=") {
			keep = append(keep, kv)
		}
	}
	path := pathWithout(t, "mmdebstrap")
	e.vars = append(keep, "BANGER_RUNTIME_BUNDLE="+dest, "PATH="+path)

	if imgs := e.images(); len(imgs) != 1 || imgs[0].Name != "bundle" {
		t.Fatalf("images on a bundle-only host: %+v, want only the bundle", imgs)
	}
	if out := e.must("doctor"); !strings.Contains(out, dest) {
		t.Errorf("doctor does not name the bundle %s:\n%s", dest, out)
	}
	if st := e.status(); !strings.Contains(st.Runtime, dest) {
		t.Errorf("daemon status runtime = %q, want %s", st.Runtime, dest)
	}
	e.must("vm", "create", "dev")
	v := e.vm("dev")
	if v.Image != "bundle" {
		t.Errorf("vm create used image %q, want the bundle", v.Image)
	}
	if got := e.ssh("dev", "hostname; uname -r"); !strings.HasPrefix(got, "dev\n") {
		t.Errorf("guest of the bundle: %q", got)
	}
	e.must("vm", "rm", "dev", "--force")
}

// pathWithout returns a PATH of one directory holding symbolic links to
// every command on the host's PATH except the named ones.
func pathWithout(t *testing.T, drop ...string) string {
	t.Helper()
	shadow := t.TempDir()
	seen := map[string]bool{}
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, ent := range entries {
			n := ent.Name()
			if seen[n] {
				continue
			}
			seen[n] = true
			dropped := false
			for _, x := range drop {
				dropped = dropped || n == x
			}
			if !dropped {
				_ = os.Symlink(filepath.Join(d, n), filepath.Join(shadow, n))
			}
		}
	}
	for _, x := range drop {
		if _, err := os.Lstat(filepath.Join(shadow, x)); err == nil {
			t.Fatalf("%s is still on the PATH %s", x, shadow)
		}
	}
	return shadow
}
