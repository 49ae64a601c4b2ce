package bootstrap

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type cpioFile struct {
	H    CPIOHeader
	Data string
}

func sampleCPIO() []cpioFile {
	return []cpioFile{
		{H: CPIOHeader{Name: "bin", Mode: fs.ModeDir | 0o755}},
		{H: CPIOHeader{Name: "bin/busybox", Mode: 0o755, Mtime: 1700000000}, Data: "\x7fELF fake busybox"},
		{H: CPIOHeader{Name: "bin/sh", Mode: fs.ModeSymlink | 0o777, Linkname: "busybox"}},
		{H: CPIOHeader{Name: "dev/console", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, DevMajor: 5, DevMinor: 1}},
		{H: CPIOHeader{Name: "empty", Mode: 0o644, UID: 1000, GID: 100}},
		{H: CPIOHeader{Name: "odd-length-name.txt", Mode: fs.ModeSetuid | 0o755}, Data: "abc"},
	}
}

func writeSample(t *testing.T, files []cpioFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	cw := NewCPIOWriter(&buf)
	for _, f := range files {
		h := f.H
		h.Size = int64(len(f.Data))
		if err := cw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := cw.Write([]byte(f.Data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readAll(t *testing.T, data []byte) []cpioFile {
	t.Helper()
	cr := NewCPIOReader(bytes.NewReader(data))
	var got []cpioFile
	for {
		h, err := cr.Next()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(cr)
		if err != nil {
			t.Fatal(err)
		}
		h.Ino, h.Nlink, h.Size = 0, 0, 0
		got = append(got, cpioFile{H: h, Data: string(b)})
	}
}

func TestCPIORoundTrip(t *testing.T) {
	files := sampleCPIO()
	data := writeSample(t, files)
	if len(data)%4 != 0 {
		t.Errorf("archive length %d is not 4-byte aligned", len(data))
	}
	if diff := cmp.Diff(files, readAll(t, data)); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
}

// TestCPIOReadByCpioTool checks the archive against GNU cpio, an
// independent reader, when it is installed.
func TestCPIOReadByCpioTool(t *testing.T) {
	cpio, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("needs GNU cpio")
	}
	var files []cpioFile
	for _, f := range sampleCPIO() {
		if f.H.Mode&fs.ModeDevice == 0 { // mknod needs root
			files = append(files, f)
		}
	}
	dir := t.TempDir()
	cmd := exec.Command(cpio, "-i", "--quiet", "--no-absolute-filenames", "-d")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(writeSample(t, files))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "bin/busybox")); err != nil || string(b) != "\x7fELF fake busybox" {
		t.Errorf("bin/busybox = %q, %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(dir, "bin/sh")); err != nil || l != "busybox" {
		t.Errorf("bin/sh -> %q, %v", l, err)
	}
}

func TestCPIOWriterRejectsOverflow(t *testing.T) {
	cw := NewCPIOWriter(io.Discard)
	if err := cw.WriteHeader(CPIOHeader{Name: "f", Mode: 0o644, Size: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := cw.Write([]byte("abc")); err == nil {
		t.Error("writing past Size succeeded")
	}
	cw = NewCPIOWriter(io.Discard)
	cw.WriteHeader(CPIOHeader{Name: "f", Mode: 0o644, Size: 2})
	if err := cw.WriteHeader(CPIOHeader{Name: "g", Mode: 0o644}); err == nil {
		t.Error("new header with the previous entry short succeeded")
	}
}

func TestCPIOReaderRejectsBadMagic(t *testing.T) {
	if _, err := NewCPIOReader(bytes.NewReader(bytes.Repeat([]byte("x"), 200))).Next(); err == nil {
		t.Error("Next on garbage succeeded")
	}
}
