package bootstrap_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"banger/internal/bootstrap"
	"banger/internal/hostsetup"
	"banger/internal/testutil"
)

// rootlessChildEnv, set to a cache directory, makes TestBuildRootlessForReal
// the child that bootstraps as the test user.
const rootlessChildEnv = "BANGER_TEST_ROOTLESS_CACHE"

// TestBuildRootlessForReal bootstraps a real image as a user who is not
// root: a user made for the test, with subordinate ids as `banger system
// setup` grants them, a cache in a home directory nobody else may enter.
// As that user (the test binary re-run through setpriv), it first
// interrupts a bootstrap, which must leave nothing, then makes an image.
// Back as root, it checks the image records root-owned files as uid 0, the
// guest's system users as themselves and the /dev nodes, and that nothing
// the user owns is left owned by a subordinate id (the user can remove the
// whole cache) and no process of the user's runs.
func TestBuildRootlessForReal(t *testing.T) {
	if cache := os.Getenv(rootlessChildEnv); cache != "" {
		rootlessChild(t, cache)
		return
	}
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "mmdebstrap", "newuidmap", "newgidmap", "unshare", "useradd", "userdel", "usermod", "setpriv", "debugfs")
	testutil.Short(t, "bootstraps a real image as a user without root (about a minute)")
	u := addSubIDUser(t)

	base, err := os.MkdirTemp("", "banger-rootless-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	home := filepath.Join(base, "home")
	cache := filepath.Join(home, "cache")
	for _, step := range []error{
		os.Chmod(base, 0o755),
		os.MkdirAll(filepath.Join(cache, "debs"), 0o755),
		seedDebs(filepath.Join(cache, "debs")),
		os.Chmod(home, 0o700),
		chownTree(home, u.uid, u.gid),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	exe := filepath.Join(base, "bootstrap.test")
	if err := copyExecutable(exe); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	cmd := exec.Command("setpriv", "--reuid="+strconv.Itoa(u.uid), "--regid="+strconv.Itoa(u.gid), "--init-groups", "--",
		exe, "-test.run", "^TestBuildRootlessForReal$", "-test.v", "-test.count=1", "-test.timeout=20m")
	cmd.Dir = home
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + home, rootlessChildEnv + "=" + cache}
	out, err := cmd.CombinedOutput()
	t.Logf("as %s (uid %d), %s:\n%s", u.name, u.uid, time.Since(start).Round(time.Second), out)
	if err != nil || !strings.Contains(string(out), "--- PASS: TestBuildRootlessForReal") {
		t.Fatalf("bootstrap as %s failed: %v", u.name, err)
	}

	var res bootstrap.Result
	if b, err := os.ReadFile(filepath.Join(home, "result.json")); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	checkRootlessImage(t, res.Rootfs)
	leftovers(t, u, home)
}

// rootlessChild runs as the test user: an interrupted bootstrap, then a
// complete one whose result it writes to $HOME/result.json.
func rootlessChild(t *testing.T, cache string) {
	if os.Geteuid() == 0 {
		t.Fatal("the rootless child runs as root")
	}
	home := os.Getenv("HOME")
	progress := func(p bootstrap.Progress) {
		t.Logf("%s: %s (%s)", p.Step, p.Message, p.Elapsed.Round(time.Millisecond))
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(8*time.Second, cancel) // well into mmdebstrap's installation
	interrupted := filepath.Join(home, "interrupted")
	_, err := bootstrap.Build(ctx, bootstrap.Deps{}, bootstrap.Options{Name: "interrupted", CacheDir: cache, OutDir: interrupted}, progress)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Build = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(interrupted); !os.IsNotExist(err) {
		t.Errorf("output directory exists after the interrupt: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(cache, "images")); len(entries) > 0 {
		t.Errorf("left in the cache after the interrupt: %v", entries)
	}

	start := time.Now()
	res, err := bootstrap.Build(context.Background(), bootstrap.Deps{},
		bootstrap.Options{Name: "rootless", CacheDir: cache, OutDir: filepath.Join(home, "img")}, progress)
	if err != nil {
		t.Fatalf("Build as uid %d: %v", os.Getuid(), err)
	}
	t.Logf("cold rootless bootstrap: %s, %d packages, rootfs %d MiB allocated", time.Since(start).Round(time.Second), res.Packages, res.RootfsAlloc>>20)
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "result.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkRootlessImage reads the image with debugfs: guest root's files are
// uid 0, _apt's are _apt's, /dev has its nodes.
func checkRootlessImage(t *testing.T, rootfs string) {
	t.Helper()
	debugfs := func(req string) string {
		out, err := exec.Command("debugfs", "-R", req, rootfs).Output()
		if err != nil {
			t.Fatalf("debugfs -R %q: %v", req, err)
		}
		return string(out)
	}
	for _, p := range []string{"/", "/etc/passwd", "/usr/sbin/sshd", "/root", "/boot"} {
		if out := debugfs("stat " + p); !strings.Contains(out, "User:     0   Group:     0") {
			t.Errorf("%s is not owned by 0:0 in the image:\n%s", p, out)
		}
	}
	passwd := debugfs("cat /etc/passwd")
	apt := ""
	for _, line := range strings.Split(passwd, "\n") {
		if f := strings.Split(line, ":"); len(f) > 3 && f[0] == "_apt" {
			apt = f[2]
		}
	}
	if apt == "" || apt == "0" {
		t.Fatalf("no _apt user in the image's /etc/passwd:\n%s", passwd)
	}
	if out := debugfs("stat /var/cache/apt/archives/partial"); !strings.Contains(out, "User: "+fmt.Sprintf("%5s", apt)+"   Group:     0") {
		t.Errorf("/var/cache/apt/archives/partial is not _apt's (uid %s):\n%s", apt, out)
	}
	if out := debugfs("stat /dev/null"); !strings.Contains(out, "Type: character special") || !strings.Contains(out, "Mode:  0666") ||
		!strings.Contains(out, "User:     0") {
		t.Errorf("/dev/null in the image:\n%s", out)
	}
}

// leftovers fails for any file in dir not owned by u, and for any
// process running as u or as one of u's subordinate ids.
func leftovers(t *testing.T, u subIDUser, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int(st.Uid) != u.uid || int(st.Gid) != u.gid {
			t.Errorf("%s is owned by %d:%d, not by the user %d:%d", path, st.Uid, st.Gid, u.uid, u.gid)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fi, err := os.Stat(filepath.Join("/proc", p.Name()))
		if err != nil {
			continue
		}
		uid := int(fi.Sys().(*syscall.Stat_t).Uid)
		if uid == u.uid || (uid >= u.subStart && uid < u.subStart+hostsetup.SubIDCount) {
			cmdline, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
			t.Errorf("process %d of uid %d still runs: %q", pid, uid, strings.ReplaceAll(string(cmdline), "\x00", " "))
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// subIDUser is an account made for the test, with subordinate ids.
type subIDUser struct {
	name     string
	uid, gid int
	subStart int
}

// addSubIDUser makes a user with 65536 subordinate uids and gids, as
// `banger system setup` leaves one, and deletes it after the test.
func addSubIDUser(t *testing.T) subIDUser {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := "bgb" + hex.EncodeToString(b)
	if out, err := exec.Command("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v: %s", name, err, out)
		}
	})
	acct, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	u := subIDUser{name: name}
	u.uid, _ = strconv.Atoi(acct.Uid)
	u.gid, _ = strconv.Atoi(acct.Gid)
	subuid, subgid := readSubIDs(t, "/etc/subuid"), readSubIDs(t, "/etc/subgid")
	if !hostsetup.HasSubIDs(subuid, name, u.uid) || !hostsetup.HasSubIDs(subgid, name, u.uid) {
		start := hostsetup.FreeSubIDs(subuid, subgid)
		r := fmt.Sprintf("%d-%d", start, start+hostsetup.SubIDCount-1)
		if out, err := exec.Command("usermod", "--add-subuids", r, "--add-subgids", r, name).CombinedOutput(); err != nil {
			t.Fatalf("usermod --add-subuids %s %s: %v: %s", r, name, err, out)
		}
		subuid = readSubIDs(t, "/etc/subuid")
	}
	for _, r := range subuid {
		if r.Owner == name || r.Owner == acct.Uid {
			u.subStart = r.Start // --map-auto takes the first block
			break
		}
	}
	return u
}

func readSubIDs(t *testing.T, path string) []hostsetup.SubIDRange {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	r, err := hostsetup.ParseSubIDs(b)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return r
}

// seedDebs copies the packages the shared test cache has downloaded, so the
// test downloads only what is new.
func seedDebs(dst string) error {
	shared, err := testutil.GuestImageCache()
	if err != nil {
		return err
	}
	src := filepath.Join(shared, "debs", bootstrap.DefaultSuite)
	if _, err := os.Stat(src); err != nil {
		return nil
	}
	if out, err := exec.Command("cp", "-r", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("seeding packages from %s: %v: %s", src, err, out)
	}
	for _, junk := range []string{"lock", "partial"} {
		os.RemoveAll(filepath.Join(dst, bootstrap.DefaultSuite, junk))
	}
	return nil
}

func chownTree(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
}

// copyExecutable copies the test binary where the test user can run it.
func copyExecutable(dst string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	in, err := os.Open(self)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
