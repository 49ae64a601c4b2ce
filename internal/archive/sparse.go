package archive

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Go's archive/tar reads every sparse format GNU tar writes but cannot
// write any, so a file with holes is written here by hand in the PAX
// sparse format 1.0: an extended header carrying GNU.sparse.* records,
// then a ustar header whose data is the sparse map (a text block) followed
// by the data regions only.

// region is a run of a file's bytes: data when archiving, and in a sparse
// map also the final empty region that marks a trailing hole.
type region struct{ off, len int64 }

// minHoles is how many bytes of holes make the sparse format worth its
// extra header blocks.
const minHoles = 64 << 10

const blockSize = 512

// dataRegions lists f's data regions with SEEK_DATA/SEEK_HOLE. A file
// system that cannot report holes gives one region, the whole file.
func dataRegions(f *os.File, size int64) ([]region, error) {
	if size == 0 {
		return nil, nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	dense := []region{{0, size}}
	var regions []region
	cerr := rc.Control(func(fd uintptr) {
		for off := int64(0); off < size; {
			d, err := unix.Seek(int(fd), off, unix.SEEK_DATA)
			if err == unix.ENXIO || err == nil && d >= size {
				return // only a hole is left
			}
			if err != nil {
				regions = dense
				return
			}
			h, err := unix.Seek(int(fd), d, unix.SEEK_HOLE)
			if err != nil {
				regions = dense
				return
			}
			h = min(h, size)
			regions = append(regions, region{d, h - d})
			off = h
		}
	})
	if cerr != nil {
		return nil, cerr
	}
	return regions, nil
}

func worthSparse(regions []region, size int64) bool {
	var data int64
	for _, r := range regions {
		data += r.len
	}
	return size-data >= minHoles
}

// sparseMap renders the 1.0 map: the number of entries, then each
// offset and length, one number a line, padded to a block. A file that
// ends in a hole gets a final empty region at its size, as GNU tar writes
// it (GNU tar truncates the file there).
func sparseMap(regions []region, size int64) []byte {
	entries := regions
	if len(regions) == 0 || regions[len(regions)-1].off+regions[len(regions)-1].len < size {
		entries = append(entries[:len(entries):len(entries)], region{size, 0})
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d\n", len(entries))
	for _, r := range entries {
		fmt.Fprintf(&b, "%d\n%d\n", r.off, r.len)
	}
	b.Write(make([]byte, padding(int64(b.Len()))))
	return b.Bytes()
}

func padding(n int64) int64 { return -n & (blockSize - 1) }

// writeSparse writes hdr's file as a PAX 1.0 sparse entry straight to the
// archive's stream, between two entries of the tar.Writer.
func (a *archiver) writeSparse(f *os.File, hdr *tar.Header, regions []region) error {
	if err := a.tw.Flush(); err != nil {
		return err
	}
	smap := sparseMap(regions, hdr.Size)
	stored := int64(len(smap))
	for _, r := range regions {
		stored += r.len
	}
	recs := paxRecord("GNU.sparse.major", "1") + paxRecord("GNU.sparse.minor", "0") +
		paxRecord("GNU.sparse.name", hdr.Name) + paxRecord("GNU.sparse.realsize", strconv.FormatInt(hdr.Size, 10))
	if !fitsOctal(stored, 12) {
		recs += paxRecord("size", strconv.FormatInt(stored, 10))
	}
	mtime := max(hdr.ModTime.Unix(), 0)
	base := path.Base(hdr.Name)
	var out bytes.Buffer
	out.Write(ustarHeader("PaxHeaders.0/"+base, 0o644, int64(len(recs)), mtime, tar.TypeXHeader))
	out.WriteString(recs)
	out.Write(make([]byte, padding(int64(len(recs)))))
	out.Write(ustarHeader(path.Join(path.Dir(hdr.Name), "GNUSparseFile.0", base), hdr.Mode, stored, mtime, tar.TypeReg))
	out.Write(smap)
	if _, err := a.w.Write(out.Bytes()); err != nil {
		return err
	}
	if a.buf == nil {
		a.buf = make([]byte, 256<<10)
	}
	for _, r := range regions {
		n, err := io.CopyBuffer(a.w, io.NewSectionReader(f, r.off, r.len), a.buf)
		if err != nil {
			return err
		}
		if n < r.len {
			return fmt.Errorf("%s shrank while it was archived", f.Name())
		}
	}
	_, err := a.w.Write(make([]byte, padding(stored)))
	return err
}

// paxRecord formats one PAX record, "LEN KEY=VALUE\n", where LEN counts
// the whole record including its own digits.
func paxRecord(k, v string) string {
	n := len(k) + len(v) + 3 // ' ', '=' and '\n'
	n += len(strconv.Itoa(n))
	if len(strconv.Itoa(n))+len(k)+len(v)+3 != n {
		n++ // adding the length's digits made it one digit longer
	}
	return strconv.Itoa(n) + " " + k + "=" + v + "\n"
}

func fitsOctal(v int64, width int) bool {
	return v >= 0 && len(strconv.FormatInt(v, 8)) <= width-1
}

// ustarHeader renders a 512-byte ustar header owned by root. A name over
// 100 bytes is cut (the real name travels in a PAX record); a size that
// does not fit is left 0 (a PAX "size" record carries it).
func ustarHeader(name string, mode, size, mtime int64, typeflag byte) []byte {
	b := make([]byte, blockSize)
	copy(b[0:100], name)
	octal(b[100:108], mode&0o7777)
	octal(b[108:116], 0)
	octal(b[116:124], 0)
	if fitsOctal(size, 12) {
		octal(b[124:136], size)
	} else {
		octal(b[124:136], 0)
	}
	octal(b[136:148], mtime)
	b[156] = typeflag
	copy(b[257:263], "ustar\x00")
	copy(b[263:265], "00")
	copy(b[265:297], "root")
	copy(b[297:329], "root")
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func octal(dst []byte, v int64) {
	s := strconv.FormatInt(v, 8)
	if len(s) > len(dst)-1 {
		s = "0"
	}
	copy(dst, strings.Repeat("0", len(dst)-1-len(s))+s)
	dst[len(dst)-1] = 0
}

// holeWriter writes a new file sequentially but leaves every all-zero
// block (4 KiB, aligned in the file) unwritten, so it becomes a hole;
// the caller truncates the file to its size at the end. This keeps a
// sparse file sparse whatever format the archive used.
type holeWriter struct {
	f       *os.File
	off     int64
	written int64 // bytes written, zero blocks left out
}

const holeBlock = 4096

// zeroBlock is compared against, never written.
var zeroBlock [holeBlock]byte

func (h *holeWriter) Write(p []byte) (int, error) {
	n := len(p)
	run := -1 // start in p of the pending run of data blocks
	for i := 0; i < len(p); {
		end := min(len(p), i+holeBlock-int((h.off+int64(i))%holeBlock))
		zero := bytes.Equal(p[i:end], zeroBlock[:end-i])
		switch {
		case !zero && run < 0:
			run = i
		case zero && run >= 0:
			if _, err := h.f.WriteAt(p[run:i], h.off+int64(run)); err != nil {
				return 0, err
			}
			h.written += int64(i - run)
			run = -1
		}
		i = end
	}
	if run >= 0 {
		if _, err := h.f.WriteAt(p[run:], h.off+int64(run)); err != nil {
			return 0, err
		}
		h.written += int64(len(p) - run)
	}
	h.off += int64(n)
	return n, nil
}
