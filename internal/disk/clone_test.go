package disk

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// holeyFile writes a file of size bytes with random data at the given
// offsets (64 KiB each) and holes everywhere else.
func holeyFile(t testing.TB, p string, size int64, offsets ...int64) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for _, off := range offsets {
		rand.Read(buf)
		if _, err := f.WriteAt(buf, off); err != nil {
			t.Fatal(err)
		}
	}
}

func allocated(t testing.TB, p string) int64 {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Blocks * 512
}

func sameContent(t testing.TB, a, b string) {
	t.Helper()
	fa, _ := os.Open(a)
	fb, _ := os.Open(b)
	defer fa.Close()
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for off := int64(0); ; off += int64(len(ba)) {
		na, ea := io.ReadFull(fa, ba)
		nb, _ := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			t.Fatalf("%s and %s differ near offset %d", a, b, off)
		}
		if ea != nil {
			return
		}
	}
}

func TestCloneRootKeepsHoles(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "rootfs.ext4"), filepath.Join(dir, "vm", "root.ext4")
	os.Mkdir(filepath.Dir(dst), 0o700)
	holeyFile(t, src, 256<<20, 0, 1<<20, 100<<20+4096, 256<<20-64<<10)
	method, err := New(Deps{}).CloneRoot(context.Background(), src, dst)
	if err != nil {
		t.Fatal(err)
	}
	sameContent(t, src, dst)
	if method == SparseCopy && allocated(t, dst) > 2*allocated(t, src) {
		t.Errorf("sparse copy allocated %d bytes for a source with %d", allocated(t, dst), allocated(t, src))
	}
	if st, _ := os.Stat(dst); st.Mode().Perm() != 0o600 || st.Size() != 256<<20 {
		t.Errorf("clone mode %v size %d", st.Mode(), st.Size())
	}
	t.Logf("method %s, allocated %d of %d", method, allocated(t, dst), int64(256<<20))
}

func TestSparseCopyDirect(t *testing.T) {
	// The copy path itself, whatever the temp filesystem supports, plus the
	// read/write fallback that also skips zero blocks.
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	holeyFile(t, src, 64<<20, 8<<20, 40<<20+512)
	// An allocated but zero-filled range: only the fallback keeps it sparse.
	f, _ := os.OpenFile(src, os.O_WRONLY, 0)
	f.WriteAt(make([]byte, 4<<20), 20<<20)
	f.Close()
	in, _ := os.Open(src)
	defer in.Close()
	for name, copyFn := range map[string]func(out *os.File) error{
		"copy_file_range": func(out *os.File) error { return sparseCopy(context.Background(), in, out, 64<<20) },
		"read-write": func(out *os.File) error {
			if err := out.Truncate(64 << 20); err != nil {
				return err
			}
			return copyNonZero(in, out, 0, 64<<20)
		},
	} {
		dst := filepath.Join(dir, name)
		if err := writeAtomically(dst, copyFn); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sameContent(t, src, dst)
		if a := allocated(t, dst); a > 6<<20 {
			t.Errorf("%s: allocated %d bytes, want the data (~4.2 MiB) only", name, a)
		}
	}
}

func TestCloneRootRefusesExistingDestination(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	holeyFile(t, src, 1<<20, 0)
	os.WriteFile(dst, []byte("precious"), 0o600)
	if _, err := New(Deps{}).CloneRoot(context.Background(), src, dst); !errors.Is(err, os.ErrExist) {
		t.Errorf("err = %v, want ErrExist", err)
	}
	if data, _ := os.ReadFile(dst); string(data) != "precious" {
		t.Error("existing destination overwritten")
	}
}

func TestCloneRootCancelledLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "a"), filepath.Join(dir, "vm", "b")
	os.Mkdir(filepath.Dir(dst), 0o700)
	holeyFile(t, src, 1<<20, 0)
	if _, err := cloneFile(context.Background(), src, filepath.Join(dir, "probe"), reflinkOnly); err == nil {
		t.Skip("reflinks finish before cancellation can be seen")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := New(Deps{}).CloneRoot(ctx, src, dst); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(dst)); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}

func TestCloneRootRejectsNonRegular(t *testing.T) {
	dir := t.TempDir()
	if _, err := New(Deps{}).CloneRoot(context.Background(), dir, filepath.Join(dir, "x")); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("err = %v", err)
	}
}

func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{".root.ext4" + tempMarker + "123", ".work.ext4" + tempMarker + "grow-backup", "root.ext4", ".hidden"} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o600)
	}
	staging := filepath.Join(dir, ".flat.ext4"+tempMarker+"data-42")
	os.Mkdir(staging, 0o700)
	os.WriteFile(filepath.Join(staging, "17"), []byte("copied out of a layer"), 0o600)
	removed, err := RemoveTemps(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 3 {
		t.Errorf("removed %v, want the two temporary files and Flatten's staging directory", removed)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("left %v, want root.ext4 and .hidden", entries)
	}
}

func TestRemoveTempsBeforeSparesRecentOnes(t *testing.T) {
	dir := t.TempDir()
	old, fresh := filepath.Join(dir, ".work-1.ext4"+tempMarker+"1"), filepath.Join(dir, ".work-2.ext4"+tempMarker+"2")
	for _, p := range []string{old, fresh} {
		os.WriteFile(p, nil, 0o600)
	}
	hourAgo := time.Now().Add(-time.Hour)
	os.Chtimes(old, hourAgo, hourAgo)
	removed, err := RemoveTempsBefore(dir, time.Now().Add(-time.Minute))
	if err != nil || len(removed) != 1 || removed[0] != old {
		t.Errorf("removed %v, %v; want only %s", removed, err, old)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a temporary file in use was removed: %v", err)
	}
}
