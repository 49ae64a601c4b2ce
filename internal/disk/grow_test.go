package disk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"banger/internal/system"
)

func identityLookPath(name string) (string, error) { return name, nil }

// fakeTools answers debugfs stats with fsSize and fails the commands in fail.
func fakeTools(fsSize int64, fail map[string]error) *system.Fake {
	return &system.Fake{Handler: func(argv []string, _ []byte) ([]byte, error) {
		if err, ok := fail[argv[0]+" "+argv[1]]; ok {
			return nil, err
		}
		if argv[0] == "debugfs" && argv[1] == "-R" {
			return fmt.Appendf(nil, "Block count:              %d\nBlock size:               4096\n", fsSize/4096), nil
		}
		return nil, nil
	}}
}

func sizedFile(t *testing.T, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "root.ext4")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func TestGrowRefusesShrinkWithoutTouchingTheDisk(t *testing.T) {
	p := sizedFile(t, 64<<20)
	f := fakeTools(64<<20, nil)
	err := New(Deps{Runner: f, LookPath: identityLookPath}).Grow(context.Background(), p, 32<<20)
	if !errors.Is(err, ErrShrink) || !strings.Contains(err.Error(), "64M") {
		t.Errorf("err = %v, want ErrShrink naming the current size", err)
	}
	if len(f.Calls()) != 0 || fileSize(t, p) != 64<<20 {
		t.Errorf("shrink attempt ran %v and left size %d", f.CallLines(), fileSize(t, p))
	}
}

func TestGrowRunsCheckThenResize(t *testing.T) {
	p := sizedFile(t, 64<<20)
	f := fakeTools(64<<20, nil)
	if err := New(Deps{Runner: f, LookPath: identityLookPath}).Grow(context.Background(), p, 128<<20); err != nil {
		t.Fatal(err)
	}
	want := []string{"debugfs -R stats " + p, "e2fsck -f -p " + p, "resize2fs " + p}
	if got := f.CallLines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls = %q, want %q", got, want)
	}
	if fileSize(t, p) != 128<<20 {
		t.Errorf("size = %d", fileSize(t, p))
	}
}

func TestGrowSameSizeIsNoOpUnlessFilesystemIsSmaller(t *testing.T) {
	p := sizedFile(t, 64<<20)
	f := fakeTools(64<<20, nil)
	m := New(Deps{Runner: f, LookPath: identityLookPath})
	if err := m.Grow(context.Background(), p, 64<<20); err != nil {
		t.Fatal(err)
	}
	if len(f.Calls()) != 1 {
		t.Errorf("same size ran %q, want only the size probe", f.CallLines())
	}
	// An earlier growth extended the file but resize2fs never ran.
	f = fakeTools(32<<20, nil)
	m = New(Deps{Runner: f, LookPath: identityLookPath})
	if err := m.Grow(context.Background(), p, 64<<20); err != nil {
		t.Fatal(err)
	}
	if got := f.CallLines(); len(got) != 3 || !strings.HasPrefix(got[2], "resize2fs") {
		t.Errorf("repair ran %q, want a resize2fs", got)
	}
}

func TestGrowStopsWhenCheckFindsUnfixableErrors(t *testing.T) {
	p := sizedFile(t, 64<<20)
	f := fakeTools(64<<20, map[string]error{"e2fsck -f": &system.CommandError{Argv: []string{"e2fsck"}, ExitCode: 4, Err: errors.New("exit status 4")}})
	err := New(Deps{Runner: f, LookPath: identityLookPath}).Grow(context.Background(), p, 128<<20)
	if err == nil || !strings.Contains(err.Error(), "nothing was changed") || !strings.Contains(err.Error(), "e2fsck -f "+p) {
		t.Errorf("err = %v, want it to say nothing changed and name the fix", err)
	}
	if fileSize(t, p) != 64<<20 {
		t.Errorf("file grew to %d despite a failed check", fileSize(t, p))
	}
	for _, c := range f.CallLines() {
		if strings.HasPrefix(c, "resize2fs") {
			t.Errorf("resize2fs ran after a failed check")
		}
	}
}

func TestGrowAcceptsRepairedFilesystem(t *testing.T) {
	p := sizedFile(t, 64<<20)
	f := fakeTools(64<<20, map[string]error{"e2fsck -f": &system.CommandError{Argv: []string{"e2fsck"}, ExitCode: 1, Err: errors.New("exit status 1")}})
	if err := New(Deps{Runner: f, LookPath: identityLookPath}).Grow(context.Background(), p, 128<<20); err != nil {
		t.Errorf("e2fsck exit 1 (errors corrected) stopped growth: %v", err)
	}
}

func TestGrowResizeFailureExplains(t *testing.T) {
	// On a filesystem without reflinks there is no snapshot: the file stays
	// larger and the error says the disk is still usable.
	p := sizedFile(t, 64<<20)
	if _, err := cloneFile(context.Background(), p, p+".probe", reflinkOnly); err == nil {
		t.Skip("the temp directory supports reflinks; the snapshot path is tested in the root tier")
	}
	f := fakeTools(64<<20, map[string]error{"resize2fs " + p: errors.New("boom")})
	err := New(Deps{Runner: f, LookPath: identityLookPath}).Grow(context.Background(), p, 128<<20)
	if err == nil || !strings.Contains(err.Error(), "intact") || !strings.Contains(err.Error(), "resize2fs "+p) {
		t.Errorf("err = %v", err)
	}
	if got := f.CallLines(); got[len(got)-1] != "e2fsck -f -n "+p {
		t.Errorf("no read-only check after the failure: %q", got)
	}
}

func TestGrowRejectsOddSizes(t *testing.T) {
	p := sizedFile(t, 64<<20)
	f := fakeTools(64<<20, nil)
	if err := New(Deps{Runner: f, LookPath: identityLookPath}).Grow(context.Background(), p, 100<<20+1); err == nil {
		t.Error("size not a multiple of 4 KiB accepted")
	}
}

func TestCreateWorkFormatsUnderTempName(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "work.ext4")
	var formatted string
	f := &system.Fake{Handler: func(argv []string, _ []byte) ([]byte, error) {
		formatted = argv[len(argv)-1]
		if st, err := os.Stat(formatted); err != nil || st.Size() != 64<<20 {
			return nil, fmt.Errorf("mkfs saw %v, %v", st, err)
		}
		return nil, nil
	}}
	if err := New(Deps{Runner: f, LookPath: identityLookPath}).CreateWork(context.Background(), p, 64<<20); err != nil {
		t.Fatal(err)
	}
	want := strings.Join(MkfsWorkArgv(formatted), " ")
	if got := f.CallLines(); len(got) != 1 || got[0] != want || formatted == p {
		t.Errorf("calls = %q, want %q on a temporary name", got, want)
	}
	if fileSize(t, p) != 64<<20 {
		t.Errorf("size = %d", fileSize(t, p))
	}
	if err := New(Deps{Runner: f, LookPath: identityLookPath}).CreateWork(context.Background(), p, 64<<20); !errors.Is(err, os.ErrExist) {
		t.Errorf("existing work disk: err = %v, want ErrExist", err)
	}
}

func TestCreateWorkFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "work.ext4")
	f := &system.Fake{Handler: func([]string, []byte) ([]byte, error) { return nil, errors.New("mkfs broke") }}
	if err := New(Deps{Runner: f, LookPath: identityLookPath}).CreateWork(context.Background(), p, 64<<20); err == nil {
		t.Fatal("mkfs failure not reported")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}

func TestMissingToolNamesPackage(t *testing.T) {
	m := New(Deps{Runner: &system.Fake{}, LookPath: func(string) (string, error) { return "", os.ErrNotExist }})
	err := m.CreateWork(context.Background(), filepath.Join(t.TempDir(), "w"), 64<<20)
	if err == nil || !strings.Contains(err.Error(), "apt-get install e2fsprogs") {
		t.Errorf("err = %v", err)
	}
}
