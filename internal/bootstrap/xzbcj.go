package bootstrap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ulikunitz/xz/lzma"
)

// xz filter IDs used by kernel builds.
const (
	xzFilterX86   = 0x04
	xzFilterLZMA2 = 0x21
)

// decodeXZBlocks decodes an xz stream whose blocks use LZMA2, optionally
// preceded by the x86 BCJ filter, which is what `make` with CONFIG_KERNEL_XZ
// produces. It reads the container by hand, hands each block's LZMA2 data
// to the xz library's raw LZMA2 reader, and undoes the BCJ filter itself.
// Checks (CRC32/CRC64/SHA-256) are skipped: the result is verified as ELF.
func decodeXZBlocks(data []byte) ([]byte, error) {
	if len(data) < 12 || !bytes.HasPrefix(data, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}) {
		return nil, errors.New("xz: no stream header")
	}
	checkSize := xzCheckSize(data[7] & 0x0f)
	pos := 12
	var out bytes.Buffer
	for {
		if pos >= len(data) {
			return out.Bytes(), errors.New("xz: stream ends before its index")
		}
		if data[pos] == 0 { // index indicator: no more blocks
			return out.Bytes(), nil
		}
		hdrSize := (int(data[pos]) + 1) * 4
		if pos+hdrSize > len(data) {
			return out.Bytes(), errors.New("xz: truncated block header")
		}
		filters, err := parseXZBlockHeader(data[pos : pos+hdrSize])
		if err != nil {
			return out.Bytes(), err
		}
		pos += hdrSize
		block, used, err := decodeXZBlock(filters, data[pos:])
		out.Write(block)
		if err != nil {
			return out.Bytes(), err
		}
		if out.Len() > maxVmlinuxSize {
			return out.Bytes(), errors.New("xz: output too large")
		}
		pos += used
		pos += (4 - used%4) % 4 // block padding
		pos += checkSize
	}
}

type xzFilter struct {
	id    uint64
	props []byte
}

func xzCheckSize(id byte) int {
	switch {
	case id == 0:
		return 0
	case id <= 3:
		return 4
	case id <= 6:
		return 8
	case id <= 9:
		return 16
	case id <= 12:
		return 32
	default:
		return 64
	}
}

func parseXZBlockHeader(h []byte) ([]xzFilter, error) {
	r := bytes.NewReader(h[2 : len(h)-4])
	flags := h[1]
	if flags&0x3c != 0 {
		return nil, errors.New("xz: reserved block flags set")
	}
	if flags&0x40 != 0 { // compressed size present
		if _, err := binary.ReadUvarint(r); err != nil {
			return nil, fmt.Errorf("xz: block compressed size: %w", err)
		}
	}
	if flags&0x80 != 0 { // uncompressed size present
		if _, err := binary.ReadUvarint(r); err != nil {
			return nil, fmt.Errorf("xz: block uncompressed size: %w", err)
		}
	}
	n := int(flags&0x03) + 1
	filters := make([]xzFilter, 0, n)
	for i := 0; i < n; i++ {
		id, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, fmt.Errorf("xz: filter id: %w", err)
		}
		size, err := binary.ReadUvarint(r)
		if err != nil || size > 64 {
			return nil, fmt.Errorf("xz: filter properties size: %v", err)
		}
		props := make([]byte, size)
		if _, err := io.ReadFull(r, props); err != nil {
			return nil, fmt.Errorf("xz: filter properties: %w", err)
		}
		filters = append(filters, xzFilter{id: id, props: props})
	}
	return filters, nil
}

// decodeXZBlock decodes one block's data and reports how many input bytes
// the compressed data used.
func decodeXZBlock(filters []xzFilter, data []byte) ([]byte, int, error) {
	last := filters[len(filters)-1]
	if last.id != xzFilterLZMA2 || len(last.props) != 1 {
		return nil, 0, fmt.Errorf("xz: unsupported filter %#x (want LZMA2 last)", last.id)
	}
	var bcjStart uint32
	bcj := false
	for _, f := range filters[:len(filters)-1] {
		if f.id != xzFilterX86 {
			return nil, 0, fmt.Errorf("xz: unsupported filter %#x (only x86 BCJ is handled)", f.id)
		}
		bcj = true
		if len(f.props) == 4 {
			bcjStart = binary.LittleEndian.Uint32(f.props)
		}
	}
	src := bytes.NewReader(data) // an io.ByteReader, so the LZMA2 reader does not read ahead
	zr, err := lzma.Reader2Config{DictCap: lzma2DictCap(last.props[0])}.NewReader2(src)
	if err != nil {
		return nil, 0, fmt.Errorf("xz: lzma2: %w", err)
	}
	var buf bytes.Buffer
	_, err = io.Copy(&buf, io.LimitReader(zr, maxVmlinuxSize+1))
	used := len(data) - src.Len()
	out := buf.Bytes()
	if bcj {
		unBCJX86(out, bcjStart)
	}
	if err != nil {
		return out, used, fmt.Errorf("xz: lzma2: %w", err)
	}
	return out, used, nil
}

func lzma2DictCap(p byte) int {
	if p >= 40 {
		return 1<<32 - 1
	}
	c := (2 | int(p&1)) << (p/2 + 11)
	if c < lzma.MinDictCap {
		c = lzma.MinDictCap
	}
	return c
}

// unBCJX86 undoes the x86 branch/call/jump filter in place: the encoder
// turned the relative targets of E8/E9 instructions into absolute ones to
// help compression. start is the stream's start offset.
func unBCJX86(buf []byte, start uint32) {
	maskAllowed := [8]bool{true, true, true, false, true, false, false, false}
	maskBit := [8]uint32{0, 1, 2, 2, 3, 3, 3, 3}
	msb := func(b byte) bool { return b == 0x00 || b == 0xff }
	if len(buf) <= 4 {
		return
	}
	size := len(buf) - 4
	prevPos := -1
	var prevMask uint32
	for i := 0; i < size; i++ {
		if buf[i]&0xfe != 0xe8 {
			continue
		}
		d := i - prevPos
		if d > 3 {
			prevMask = 0
		} else {
			prevMask = (prevMask << (d - 1)) & 7
			if prevMask != 0 {
				b := buf[i+4-int(maskBit[prevMask])]
				if !maskAllowed[prevMask] || msb(b) {
					prevPos = i
					prevMask = prevMask<<1 | 1
					continue
				}
			}
		}
		prevPos = i
		if !msb(buf[i+4]) {
			prevMask = prevMask<<1 | 1
			continue
		}
		src := binary.LittleEndian.Uint32(buf[i+1:])
		var dest uint32
		for {
			dest = src - (start + uint32(i) + 5)
			if prevMask == 0 {
				break
			}
			j := maskBit[prevMask] * 8
			if !msb(byte(dest >> (24 - j))) {
				break
			}
			src = dest ^ (1<<(32-j) - 1)
		}
		dest &= 0x01ffffff
		dest |= 0 - (dest & 0x01000000)
		binary.LittleEndian.PutUint32(buf[i+1:], dest)
		i += 4
	}
}
