package allocation

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testRegistry is a registry in a temporary directory owned by the test's
// own uid, which plays root.
func testRegistry(t *testing.T) Registry {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "users")
	return Registry{Dir: dir, Owner: os.Getuid()}
}

func alloc(t *testing.T, user string, uid int, taken ...Allocation) Allocation {
	t.Helper()
	a, err := Allocate(user, uid, taken, workstation(), DefaultPool())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestRegistryRoundTrip(t *testing.T) {
	r := testRegistry(t)
	if l, err := r.List(); err != nil || len(l) != 0 {
		t.Fatalf("List of a missing directory = %v, %v; want empty", l, err)
	}
	alice := alloc(t, "alice", 1001)
	bob := alloc(t, "bob", 1002, alice)
	for _, a := range []Allocation{bob, alice} {
		if err := r.Save(a); err != nil {
			t.Fatal(err)
		}
	}
	got, err := r.Load("alice")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(alice, got, equatePrefix); diff != "" {
		t.Errorf("Load (-saved +loaded):\n%s", diff)
	}
	list, err := r.List()
	if err != nil || len(list) != 2 || list[0].User != "alice" || list[1].User != "bob" {
		t.Errorf("List = %+v, %v; want alice then bob", list, err)
	}
	for path, want := range map[string]os.FileMode{r.Dir: 0o755, r.Path("alice"): 0o644} {
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %04o", path, st.Mode().Perm(), err, want)
		}
	}
	if labels, err := r.ZoneLabels(); err != nil || !cmp.Equal(labels, []string{"alice", "bob"}) {
		t.Errorf("ZoneLabels = %q, %v; want alice and bob", labels, err)
	}
	if err := r.Remove("alice"); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove("alice"); err != nil {
		t.Errorf("removing twice: %v", err)
	}
	_, err = r.Load("alice")
	if !errors.Is(err, ErrNotSetUp) || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "sudo banger system setup --user alice") {
		t.Errorf("Load after Remove: err = %v, want ErrNotSetUp naming the fix", err)
	}
}

func TestForUser(t *testing.T) {
	r := testRegistry(t)
	if a, err := r.ForUser("root", 0); err != nil || a.Bridge != "banger0" {
		t.Errorf("ForUser(root) = %+v, %v; want the default", a, err)
	}
	alice := alloc(t, "alice", 1001)
	if err := r.Save(alice); err != nil {
		t.Fatal(err)
	}
	if a, err := r.ForUser("alice", 1001); err != nil || a.Bridge != alice.Bridge {
		t.Errorf("ForUser(alice) = %+v, %v", a, err)
	}
	if _, err := r.ForUser("alice", 1005); err == nil || !strings.Contains(err.Error(), "records uid 1001") {
		t.Errorf("ForUser with another uid: err = %v", err)
	}
	if _, err := r.ForUser("carol", 1003); !errors.Is(err, ErrNotSetUp) {
		t.Errorf("ForUser(carol): err = %v, want ErrNotSetUp", err)
	}
}

// TestLoadRefusesUntrustedRecords checks each way a record can be one that
// someone other than root could have written or redirected.
func TestLoadRefusesUntrustedRecords(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, r Registry)
		want   string
	}{
		{"group-writable file", func(t *testing.T, r Registry) { chmod(t, r.Path("alice"), 0o664) }, "writable by group or others"},
		{"world-writable file", func(t *testing.T, r Registry) { chmod(t, r.Path("alice"), 0o646) }, "writable by group or others"},
		{"world-writable directory", func(t *testing.T, r Registry) { chmod(t, r.Dir, 0o777) }, "writable by group or others"},
		{"sticky world-writable directory of the user", func(t *testing.T, r Registry) {
			if os.Getuid() == 0 {
				t.Skip("a root-owned sticky directory is trusted; this case needs a non-root owner")
			}
			chmod(t, r.Dir, 0o1777)
		}, "writable by group or others"},
		{"symlinked file", func(t *testing.T, r Registry) {
			other := filepath.Join(filepath.Dir(r.Dir), "elsewhere.json")
			must(t, os.Rename(r.Path("alice"), other))
			must(t, os.Symlink(other, r.Path("alice")))
		}, "symlink"},
		{"symlinked directory", func(t *testing.T, r Registry) {
			real := r.Dir + ".real"
			must(t, os.Rename(r.Dir, real))
			must(t, os.Symlink(real, r.Dir))
		}, "symlink"},
		{"record of another user", func(t *testing.T, r Registry) {
			data, err := os.ReadFile(r.Path("alice"))
			must(t, err)
			must(t, os.WriteFile(r.Path("alice"), []byte(strings.Replace(string(data), `"user": "alice"`, `"user": "bob"`, 1)), 0o644))
		}, "the record is bob's"},
		{"unknown field", func(t *testing.T, r Registry) {
			data, err := os.ReadFile(r.Path("alice"))
			must(t, err)
			must(t, os.WriteFile(r.Path("alice"), []byte(strings.Replace(string(data), "{", `{"hook": "sh -c id",`, 1)), 0o644))
		}, "unknown field"},
		{"forged bridge", func(t *testing.T, r Registry) {
			data, err := os.ReadFile(r.Path("alice"))
			must(t, err)
			must(t, os.WriteFile(r.Path("alice"), []byte(strings.Replace(string(data), `"banger1"`, `"eth0"`, 1)), 0o644))
		}, "names do not match"},
		{"trailing data", func(t *testing.T, r Registry) {
			f, err := os.OpenFile(r.Path("alice"), os.O_APPEND|os.O_WRONLY, 0)
			must(t, err)
			_, err = f.WriteString(`{"user":"bob"}`)
			must(t, err)
			must(t, f.Close())
		}, "trailing data"},
		{"fifo", func(t *testing.T, r Registry) {
			must(t, os.Remove(r.Path("alice")))
			must(t, mkfifo(r.Path("alice")))
		}, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := testRegistry(t)
			must(t, r.Save(alloc(t, "alice", 1001)))
			if _, err := r.Load("alice"); err != nil {
				t.Fatalf("untampered record refused: %v", err)
			}
			tt.tamper(t, r)
			_, err := r.Load("alice")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load: err = %v, want one saying %q", err, tt.want)
			}
			if _, err := r.List(); err == nil {
				t.Error("List accepted the tampered registry")
			}
		})
	}
}

func TestLoadRefusesWrongOwner(t *testing.T) {
	r := testRegistry(t)
	must(t, r.Save(alloc(t, "alice", 1001)))
	r.Owner = os.Getuid() + 4242 // the files are not owned by whom the registry trusts
	_, err := r.Load("alice")
	if err == nil || !strings.Contains(err.Error(), "owned by uid") {
		t.Errorf("Load of a file owned by uid %d, trusting %d: err = %v", os.Getuid(), r.Owner, err)
	}
	if os.Getuid() != 0 {
		return
	}
	// As root: a root-trusting registry refuses a file chowned to nobody.
	r.Owner = 0
	must(t, os.Chown(r.Path("alice"), 65534, 65534))
	if _, err := r.Load("alice"); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Errorf("Load of a file owned by nobody: err = %v", err)
	}
}

func TestCheckTrustedPath(t *testing.T) {
	for _, p := range []string{"relative/path", "/tmp/../etc", "/tmp/x/"} {
		if err := CheckTrustedPath(p, 0); err == nil {
			t.Errorf("CheckTrustedPath(%q) accepted", p)
		}
	}
	if err := CheckTrustedPath("/", 0); err != nil {
		t.Errorf("CheckTrustedPath(/): %v", err)
	}
}

func TestLock(t *testing.T) {
	r := testRegistry(t)
	unlock, err := r.Lock()
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(r.Dir, ".lock"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("lock file mode %v, %v; want 0600 (only root may hold it)", st.Mode().Perm(), err)
	}
	unlock()
	// The lock file is no record.
	if l, err := r.List(); err != nil || len(l) != 0 {
		t.Errorf("List with only the lock = %v, %v", l, err)
	}
}

func chmod(t *testing.T, p string, m os.FileMode) {
	t.Helper()
	must(t, os.Chmod(p, m))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
