package bootstrap

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// fakeELF returns a minimal 64-bit x86 ELF executable with one PT_LOAD
// segment covering body, followed by body itself. The body mixes text-like
// repetition with E8/E9 bytes so that compressors and the BCJ filter have
// something to do.
func fakeELF(t testing.TB, bodySize int) []byte {
	t.Helper()
	rng := rand.New(rand.NewSource(1))
	body := make([]byte, bodySize)
	for i := range body {
		switch {
		case i%97 == 0:
			body[i] = 0xe8
		case i%13 < 6:
			body[i] = byte(i / 13)
		default:
			body[i] = byte(rng.Intn(4))
		}
	}
	const ehsize, phsize = 64, 56
	var b bytes.Buffer
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0})
	b.Write(make([]byte, 8))
	le := binary.LittleEndian
	w := func(v any) { _ = binary.Write(&b, le, v) }
	w(uint16(2))               // ET_EXEC
	w(uint16(62))              // EM_X86_64
	w(uint32(1))               // version
	w(uint64(0x1000000))       // entry
	w(uint64(ehsize))          // phoff
	w(uint64(0))               // shoff
	w(uint32(0))               // flags
	w(uint16(ehsize))          // ehsize
	w(uint16(phsize))          // phentsize
	w(uint16(1))               // phnum
	w(uint16(64))              // shentsize
	w(uint16(0))               // shnum
	w(uint16(0))               // shstrndx
	w(uint32(1))               // PT_LOAD
	w(uint32(5))               // R+X
	w(uint64(ehsize + phsize)) // offset
	w(uint64(0x1000000))       // vaddr
	w(uint64(0x1000000))       // paddr
	w(uint64(bodySize))        // filesz
	w(uint64(bodySize))        // memsz
	w(uint64(0x1000))          // align
	b.Write(body)
	return b.Bytes()
}

func compressFixture(t testing.TB, kind Compression, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch kind {
	case Gzip:
		zw := gzip.NewWriter(&buf)
		zw.Write(data)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	case XZ:
		zw, err := xz.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(data)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	case Zstd:
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(data)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	case LZ4:
		zw := lz4.NewWriter(&buf)
		if err := zw.Apply(lz4.LegacyOption(true)); err != nil {
			t.Fatal(err)
		}
		zw.Write(data)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// The kernel build appends the uncompressed size after the stream.
	binary.Write(&buf, binary.LittleEndian, uint32(len(data)))
	return buf.Bytes()
}

// fakeBzImage wraps a compressed payload the way a bzImage does: setup
// sectors with a boot protocol header, protected-mode code, the payload,
// and trailing bytes. With header false, the header is left out and the
// payload must be found by its magic alone.
func fakeBzImage(payload []byte, header bool) []byte {
	const setupSects = 3
	img := make([]byte, (setupSects+1)*512)
	pmCode := bytes.Repeat([]byte{0x90, 0x1f, 0x8b}, 100) // includes a false gzip magic prefix
	if header {
		img[0x1f1] = setupSects
		copy(img[0x202:], "HdrS")
		binary.LittleEndian.PutUint16(img[0x206:], 0x020f)
		binary.LittleEndian.PutUint32(img[0x248:], uint32(len(pmCode)))
		binary.LittleEndian.PutUint32(img[0x24c:], uint32(len(payload)))
	}
	img = append(img, pmCode...)
	img = append(img, payload...)
	return append(img, bytes.Repeat([]byte{0xcc}, 777)...)
}

func TestExtractVmlinux(t *testing.T) {
	elfData := fakeELF(t, 300_000)
	for _, kind := range []Compression{Gzip, XZ, Zstd, LZ4} {
		for _, header := range []bool{true, false} {
			name := string(kind) + map[bool]string{true: "/header", false: "/magic"}[header]
			t.Run(name, func(t *testing.T) {
				img := fakeBzImage(compressFixture(t, kind, elfData), header)
				got, gotKind, err := ExtractVmlinux(img)
				if err != nil {
					t.Fatal(err)
				}
				if gotKind != kind {
					t.Errorf("compression = %s, want %s", gotKind, kind)
				}
				if !bytes.Equal(got, elfData) {
					t.Errorf("extracted %d bytes, differing from the %d-byte original", len(got), len(elfData))
				}
			})
		}
	}
}

// TestExtractVmlinuxXZWithBCJ uses the xz tool to make a payload the way
// the kernel's build does (x86 BCJ + LZMA2, CRC32 check), which the xz
// library cannot decode alone.
func TestExtractVmlinuxXZWithBCJ(t *testing.T) {
	xzPath, err := exec.LookPath("xz")
	if err != nil {
		t.Skip("needs the xz tool to make a BCJ fixture")
	}
	elfData := fakeELF(t, 400_000)
	in := filepath.Join(t.TempDir(), "vmlinux")
	if err := os.WriteFile(in, elfData, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(xzPath, "--check=crc32", "--x86", "--lzma2=,dict=1MiB", "-c", in).Output()
	if err != nil {
		t.Fatal(err)
	}
	out = binary.LittleEndian.AppendUint32(out, uint32(len(elfData)))
	got, kind, err := ExtractVmlinux(fakeBzImage(out, true))
	if err != nil {
		t.Fatal(err)
	}
	if kind != XZ || !bytes.Equal(got, elfData) {
		t.Errorf("got %s, %d bytes (equal=%v), want xz and the original", kind, len(got), bytes.Equal(got, elfData))
	}
}

func TestExtractVmlinuxRejects(t *testing.T) {
	notELF := bytes.Repeat([]byte("not an elf file "), 1000)
	truncated := fakeELF(t, 10_000)[:5000]
	cases := map[string][]byte{
		"no payload":        bytes.Repeat([]byte{0x55}, 4096),
		"payload not ELF":   fakeBzImage(compressFixture(t, Gzip, notELF), true),
		"truncated ELF":     fakeBzImage(compressFixture(t, Zstd, truncated), true),
		"corrupt lz4 frame": fakeBzImage(append([]byte{0x02, 0x21, 0x4c, 0x18}, bytes.Repeat([]byte{0xff}, 64)...), false),
	}
	for name, img := range cases {
		if _, _, err := ExtractVmlinux(img); err == nil {
			t.Errorf("%s: ExtractVmlinux succeeded, want error", name)
		}
	}
}

func TestFindPayloadsHeaderFirst(t *testing.T) {
	img := fakeBzImage(compressFixture(t, LZ4, fakeELF(t, 1000)), true)
	p := FindPayloads(img)
	if len(p) == 0 || p[0].Kind != LZ4 || p[0].Offset != 4*512+300 {
		t.Errorf("FindPayloads()[0] = %+v, want the lz4 payload at %d first", p, 4*512+300)
	}
}
