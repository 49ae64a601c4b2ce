package bootstrap

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// Compression names a kernel payload compression format.
type Compression string

// The payload formats ExtractVmlinux understands.
const (
	Gzip Compression = "gzip"
	XZ   Compression = "xz"
	Zstd Compression = "zstd"
	LZ4  Compression = "lz4"
)

// payloadMagics are the leading bytes of each compressed stream as the
// kernel's build writes it. LZ4 is the legacy frame (magic 0x184C2102).
var payloadMagics = []struct {
	kind  Compression
	magic []byte
}{
	{Gzip, []byte{0x1f, 0x8b, 0x08}},
	{XZ, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
	{Zstd, []byte{0x28, 0xb5, 0x2f, 0xfd}},
	{LZ4, []byte{0x02, 0x21, 0x4c, 0x18}},
}

// maxVmlinuxSize bounds the decompressed kernel so that a corrupt stream
// cannot exhaust memory.
const maxVmlinuxSize = 512 << 20

// Payload is a compressed kernel found inside a bzImage.
type Payload struct {
	Kind   Compression
	Offset int // byte offset of the stream in the bzImage
}

// FindPayloads lists every place in img where a supported compressed stream
// starts, in file order. When img carries a valid x86 boot protocol header
// (2.08 or later), the payload it declares comes first.
func FindPayloads(img []byte) []Payload {
	var out []Payload
	seen := map[int]bool{}
	if off, ok := headerPayloadOffset(img); ok {
		for _, m := range payloadMagics {
			if bytes.HasPrefix(img[off:], m.magic) {
				out = append(out, Payload{Kind: m.kind, Offset: off})
				seen[off] = true
			}
		}
	}
	for i := 0; i < len(img); i++ {
		for _, m := range payloadMagics {
			if img[i] == m.magic[0] && bytes.HasPrefix(img[i:], m.magic) && !seen[i] {
				out = append(out, Payload{Kind: m.kind, Offset: i})
				seen[i] = true
			}
		}
	}
	return out
}

// headerPayloadOffset reads payload_offset from the boot protocol header:
// the payload starts payload_offset bytes into the protected-mode code,
// which itself follows (setup_sects+1) 512-byte sectors.
func headerPayloadOffset(img []byte) (int, bool) {
	if len(img) < 0x250 || string(img[0x202:0x206]) != "HdrS" {
		return 0, false
	}
	if binary.LittleEndian.Uint16(img[0x206:]) < 0x0208 {
		return 0, false
	}
	setupSects := int(img[0x1f1])
	if setupSects == 0 {
		setupSects = 4
	}
	off := (setupSects+1)*512 + int(binary.LittleEndian.Uint32(img[0x248:]))
	if off <= 0 || off >= len(img) {
		return 0, false
	}
	return off, true
}

// ExtractVmlinux returns the uncompressed ELF kernel inside a bzImage and
// the compression it was stored with. It tries each candidate payload found
// by FindPayloads and accepts the first that decompresses to a complete ELF
// file; trailing bytes after the stream (the kernel appends its size) are
// tolerated because the result is checked as ELF, not by the decoder's end.
func ExtractVmlinux(img []byte) ([]byte, Compression, error) {
	var errs []error
	for _, p := range FindPayloads(img) {
		out, derr := decompress(p.Kind, img[p.Offset:])
		if err := CheckELF(out); err != nil {
			errs = append(errs, fmt.Errorf("%s payload at offset %d: %w", p.Kind, p.Offset, errors.Join(err, derr)))
			continue
		}
		return out, p.Kind, nil
	}
	if len(errs) == 0 {
		return nil, "", errors.New("extracting vmlinux: no gzip, xz, zstd or lz4 payload found in the kernel image")
	}
	return nil, "", fmt.Errorf("extracting vmlinux: no payload decompressed to an ELF kernel: %w", errors.Join(errs...))
}

// decompress decodes one stream from the start of data. It returns what was
// decoded even when the decoder stops with an error, so the caller can judge
// the output on its own merits.
func decompress(kind Compression, data []byte) ([]byte, error) {
	var r io.Reader
	src := bytes.NewReader(data)
	switch kind {
	case Gzip:
		zr, err := gzip.NewReader(src)
		if err != nil {
			return nil, err
		}
		zr.Multistream(false)
		r = zr
	case XZ:
		return decompressXZ(data)
	case Zstd:
		zr, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxVmlinuxSize))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r = zr
	case LZ4:
		r = lz4.NewReader(src)
	default:
		return nil, fmt.Errorf("unknown compression %q", kind)
	}
	var buf bytes.Buffer
	_, err := io.Copy(&buf, io.LimitReader(r, maxVmlinuxSize))
	return buf.Bytes(), err
}

// decompressXZ decodes an xz stream. Kernel builds add the x86 BCJ filter,
// which the xz library does not implement, so such streams go through
// decodeXZBlocks instead.
func decompressXZ(data []byte) ([]byte, error) {
	zr, err := xz.ReaderConfig{SingleStream: true}.NewReader(bytes.NewReader(data))
	if err == nil {
		var buf bytes.Buffer
		_, err = io.Copy(&buf, io.LimitReader(zr, maxVmlinuxSize))
		if err == nil || CheckELF(buf.Bytes()) == nil {
			return buf.Bytes(), err
		}
	}
	out, berr := decodeXZBlocks(data)
	if berr != nil {
		return out, errors.Join(err, berr)
	}
	return out, nil
}

// CheckELF verifies that data is a complete ELF file: a valid header and
// every loadable segment's file range inside data.
func CheckELF(data []byte) error {
	if len(data) < 4 || string(data[:4]) != elf.ELFMAG {
		return errors.New("output is not ELF (no \\x7fELF magic)")
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("parsing ELF: %w", err)
	}
	defer f.Close()
	loads := 0
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		loads++
		if p.Off+p.Filesz > uint64(len(data)) {
			return fmt.Errorf("ELF truncated: segment at %#x+%#x past end %#x", p.Off, p.Filesz, len(data))
		}
	}
	if loads == 0 {
		return errors.New("ELF has no loadable segments")
	}
	return nil
}
