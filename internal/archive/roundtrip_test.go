package archive

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	sparseSize = 1 << 30
	// sparseData is how much data the sparse test file holds.
	sparseData = 3 * 64 << 10
)

// makeTree builds a tree with what a copy must keep: modes, symlinks
// (relative, absolute, dangling), a hard link, an empty directory, a
// sticky directory, a setuid file and a 1 GiB sparse file.
func makeTree(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "app")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "bin"), 0o755))
	must(os.WriteFile(filepath.Join(src, "bin", "tool"), []byte("#!/bin/sh\necho tool\n"), 0o755))
	must(os.WriteFile(filepath.Join(src, "secret"), []byte("s3cret"), 0o600))
	must(os.WriteFile(filepath.Join(src, "setuid"), []byte("x"), 0o755))
	must(os.Chmod(filepath.Join(src, "setuid"), 0o755|fs.ModeSetuid))
	must(os.WriteFile(filepath.Join(src, "empty"), nil, 0o644))
	must(os.Mkdir(filepath.Join(src, "emptydir"), 0o700))
	must(os.Mkdir(filepath.Join(src, "shared"), 0o777))
	must(os.Chmod(filepath.Join(src, "shared"), 0o777|fs.ModeSticky))
	must(os.Symlink("bin/tool", filepath.Join(src, "link")))
	must(os.Symlink("/etc/hostname", filepath.Join(src, "abslink")))
	must(os.Symlink("../../nowhere", filepath.Join(src, "dangling")))
	must(os.Link(filepath.Join(src, "secret"), filepath.Join(src, "hardlink")))
	must(os.WriteFile(filepath.Join(src, "name with spaces & 'quotes'"), []byte("odd"), 0o644))
	f, err := os.Create(filepath.Join(src, "sparse.img"))
	must(err)
	for _, off := range []int64{0, 300 << 20, sparseSize - 64<<10} {
		_, err := f.WriteAt(bytes.Repeat([]byte{byte(off >> 20), 0xab}, 32<<10), off)
		must(err)
	}
	must(f.Close())
	must(os.Chmod(filepath.Join(src, "bin"), 0o750))
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, p := range []string{"secret", "bin/tool", "emptydir", "bin", "."} {
		must(os.Chtimes(filepath.Join(src, p), old, old))
	}
	return src
}

// describe renders a tree as one line per entry: type and mode, size,
// content hash or link target, mtime for files and directories, and the
// allocated size of files over 1 MiB.
func describe(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %s", rel, fi.Mode())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		case fi.Mode().IsRegular():
			n, sum, err := hashFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %d %x %s", n, sum, fi.ModTime().UTC().Format(time.DateTime))
			if fi.Size() > 1<<20 {
				alloc := fi.Sys().(*syscall.Stat_t).Blocks * 512
				line += fmt.Sprintf(" allocated<=1MiB:%v", alloc <= 1<<20)
			}
		case fi.IsDir() && rel != ".":
			line += " " + fi.ModTime().UTC().Format(time.DateTime)
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// hashFile hashes a file's size and its non-zero 1 MiB chunks with their
// offsets: the same as hashing every byte, without hashing a GiB of zeros.
func hashFile(p string) (int64, []byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	h := sha256.New()
	buf, zero := make([]byte, 1<<20), make([]byte, 1<<20)
	var off int64
	for {
		n, err := io.ReadFull(f, buf)
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			fmt.Fprintf(h, "@%d:", off)
			h.Write(buf[:n])
		}
		off += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return off, h.Sum(nil), nil
		}
		if err != nil {
			return 0, nil, err
		}
	}
}

// countingWriter counts the bytes of a stream.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func TestRoundTripKeepsTheTree(t *testing.T) {
	src := makeTree(t)
	pr, pw := io.Pipe()
	count := &countingWriter{}
	written := make(chan error, 1)
	go func() {
		err := Write(io.MultiWriter(pw, count), src, "app", WriteOptions{})
		pw.CloseWithError(err)
		written <- err
	}()
	dst := t.TempDir()
	sum, err := Extract(pr, dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	got := describe(t, filepath.Join(dst, "app"))
	// The setuid bit is dropped on the host; everything else is kept.
	want := strings.Replace(describe(t, src), "setuid urwxr-xr-x", "setuid -rwxr-xr-x", 1)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tree after the round trip (-want +got):\n%s", diff)
	}
	if !strings.Contains(got, "sparse.img -rw-r--r-- 1073741824") || !strings.Contains(got, "allocated<=1MiB:true") {
		t.Errorf("the sparse file did not stay sparse:\n%s", got)
	}
	if count.n > 1<<20 {
		t.Errorf("the archive is %d bytes; the sparse file's holes went over the wire", count.n)
	}
	a, _ := os.Stat(filepath.Join(dst, "app", "secret"))
	b, _ := os.Stat(filepath.Join(dst, "app", "hardlink"))
	if !os.SameFile(a, b) {
		t.Error("secret and hardlink are no longer the same file")
	}
	if sum.Path != filepath.Join(dst, "app") || sum.Links != 1 || sum.Symlinks != 3 || sum.Bytes > 1<<20 {
		t.Errorf("summary %+v", sum)
	}
}

func requireTar(t *testing.T) {
	t.Helper()
	out, err := exec.Command("tar", "--version").Output()
	if err != nil || !strings.Contains(string(out), "GNU tar") {
		t.Skip("GNU tar is not installed")
	}
}

// TestGuestTarReadsWhatWriteWrites runs the guest's side of an upload,
// ExtractArgv, with the host's GNU tar.
func TestGuestTarReadsWhatWriteWrites(t *testing.T) {
	requireTar(t)
	src := makeTree(t)
	dst := t.TempDir()
	up, err := PlanUpload(src, true, filepath.Join(dst, "copy"), KindMissing)
	if err != nil {
		t.Fatal(err)
	}
	argv := ExtractArgv(up.Dir)
	cmd := exec.Command(argv[0], argv[1:]...)
	pr, pw := io.Pipe()
	cmd.Stdin = pr
	go func() { pw.CloseWithError(Write(pw, src, up.Name, WriteOptions{})) }()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", argv, err, out)
	}
	// GNU tar run by root keeps the setuid bit.
	if diff := cmp.Diff(describe(t, src), describe(t, filepath.Join(dst, "copy"))); diff != "" {
		t.Errorf("tree unpacked by GNU tar (-want +got):\n%s", diff)
	}
}

// TestExtractReadsWhatGuestTarWrites runs the guest's side of a download,
// CreateArgv, with the host's GNU tar, in each format it may use.
func TestExtractReadsWhatGuestTarWrites(t *testing.T) {
	requireTar(t)
	src := makeTree(t)
	want := strings.Replace(describe(t, src), "setuid urwxr-xr-x", "setuid -rwxr-xr-x", 1)
	for _, format := range []string{"", "--format=posix", "--format=posix --sparse-version=0.1", "--format=posix --sparse-version=1.0"} {
		t.Run(format, func(t *testing.T) {
			argv := CreateArgv(src)
			argv = append(argv[:2], append(strings.Fields(format), argv[2:]...)...)
			cmd := exec.Command(argv[0], argv[1:]...)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			count := &countingWriter{}
			dst := filepath.Join(t.TempDir(), "new")
			_, xerr := Extract(io.TeeReader(out, count), dst)
			if err := cmd.Wait(); err != nil || xerr != nil {
				t.Fatalf("tar: %v %s; extract: %v", err, stderr.String(), xerr)
			}
			if diff := cmp.Diff(want, describe(t, dst)); diff != "" {
				t.Errorf("tree from GNU tar (-want +got):\n%s", diff)
			}
			if count.n > 1<<20 {
				t.Errorf("GNU tar's archive is %d bytes: --sparse did not apply", count.n)
			}
		})
	}
}

func TestWriteStoresSparseFilesWithoutTheirHoles(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "holes")
	f, _ := os.Create(p)
	f.WriteAt([]byte("middle"), 5<<20)
	f.Truncate(16 << 20) // ends in a hole
	f.Close()
	allHole := filepath.Join(dir, "allhole")
	os.WriteFile(allHole, nil, 0o644)
	os.Truncate(allHole, 8<<20)
	for _, file := range []string{p, allHole} {
		var buf bytes.Buffer
		if err := Write(&buf, file, "f", WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		if buf.Len() > 16<<10 {
			t.Errorf("%s: archive of %d bytes", filepath.Base(file), buf.Len())
		}
		out := t.TempDir()
		if _, err := Extract(&buf, out); err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile(file)
		got, _ := os.ReadFile(filepath.Join(out, "f"))
		if !bytes.Equal(want, got) {
			t.Errorf("%s: content differs after the round trip (%d vs %d bytes)", filepath.Base(file), len(got), len(want))
		}
		var dense bytes.Buffer
		Write(&dense, file, "f", WriteOptions{NoSparse: true})
		if dense.Len() < int(len(want)) {
			t.Errorf("NoSparse archive of %d bytes holds less than the file", dense.Len())
		}
	}
}

func TestHoleWriterLeavesZeroBlocksUnwritten(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := make([]byte, 10<<20)
	copy(data[100:], "head")             // first block: data
	copy(data[5<<20+4095:], "straddles") // two blocks: data
	copy(data[len(data)-3:], "end")      // last block: data
	hw := &holeWriter{f: f}
	for chunk := data; len(chunk) > 0; {
		n := min(len(chunk), 777777) // chunks not aligned to blocks
		hw.Write(chunk[:n])
		chunk = chunk[n:]
	}
	f.Truncate(int64(len(data)))
	got, _ := os.ReadFile(f.Name())
	if !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
	fi, _ := f.Stat()
	if alloc := fi.Sys().(*syscall.Stat_t).Blocks * 512; alloc > 64<<10 {
		t.Errorf("%d bytes allocated for 4 blocks of data", alloc)
	}
}
