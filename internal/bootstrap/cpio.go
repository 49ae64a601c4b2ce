package bootstrap

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
)

// CPIOHeader describes one entry of a cpio archive in the SVR4 "newc"
// format, the format the kernel unpacks an initramfs from.
type CPIOHeader struct {
	Name     string
	Mode     fs.FileMode // type bits and permissions
	UID, GID int
	Mtime    int64
	Size     int64 // bytes of data; for a symlink, the length of Linkname
	Linkname string
	Ino      int
	Nlink    int
	// DevMajor and DevMinor identify a device node.
	DevMajor, DevMinor int
}

const (
	cpioMagic   = "070701"
	cpioHdrLen  = 110
	cpioTrailer = "TRAILER!!!"
)

// Unix file type bits as cpio stores them.
const (
	modeDir     = 0o040000
	modeRegular = 0o100000
	modeSymlink = 0o120000
	modeCharDev = 0o020000
)

// CPIOWriter writes a newc cpio archive. Write each entry's header with
// WriteHeader, then exactly Size bytes of data with Write; Close writes the
// trailer. Inode numbers are assigned in order when left zero.
type CPIOWriter struct {
	w       *countWriter
	remain  int64
	nextIno int
	err     error
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// NewCPIOWriter returns a writer that writes the archive to w.
func NewCPIOWriter(w io.Writer) *CPIOWriter {
	return &CPIOWriter{w: &countWriter{w: w}, nextIno: 1}
}

func unixMode(m fs.FileMode) int64 {
	perm := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		perm |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		perm |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		perm |= 0o1000
	}
	switch {
	case m.IsDir():
		return perm | modeDir
	case m&fs.ModeSymlink != 0:
		return perm | modeSymlink
	case m&fs.ModeCharDevice != 0:
		return perm | modeCharDev
	default:
		return perm | modeRegular
	}
}

func fileMode(u int64) fs.FileMode {
	m := fs.FileMode(u & 0o777)
	if u&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if u&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if u&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch u & 0o170000 {
	case modeDir:
		m |= fs.ModeDir
	case modeSymlink:
		m |= fs.ModeSymlink
	case modeCharDev:
		m |= fs.ModeDevice | fs.ModeCharDevice
	}
	return m
}

// WriteHeader starts a new entry. A symlink's target is written at once
// from Linkname.
func (cw *CPIOWriter) WriteHeader(h CPIOHeader) error {
	if cw.err != nil {
		return cw.err
	}
	if cw.remain != 0 {
		return fmt.Errorf("writing cpio header for %s: previous entry is %d bytes short", h.Name, cw.remain)
	}
	if err := cw.pad(); err != nil {
		return err
	}
	size := h.Size
	if h.Mode&fs.ModeSymlink != 0 {
		size = int64(len(h.Linkname))
	}
	if h.Mode.IsDir() {
		size = 0
	}
	ino := h.Ino
	if ino == 0 {
		ino = cw.nextIno
		cw.nextIno++
	}
	if ino < 0 {
		ino = 0
	}
	nlink := h.Nlink
	if nlink == 0 {
		nlink = 1
		if h.Mode.IsDir() {
			nlink = 2
		}
	}
	fields := []int64{int64(ino), unixMode(h.Mode), int64(h.UID), int64(h.GID), int64(nlink), h.Mtime, size, 0, 0, int64(h.DevMajor), int64(h.DevMinor), int64(len(h.Name) + 1), 0}
	hdr := make([]byte, 0, cpioHdrLen+len(h.Name)+1)
	hdr = append(hdr, cpioMagic...)
	for _, f := range fields {
		hdr = append(hdr, fmt.Sprintf("%08x", uint32(f))...)
	}
	hdr = append(hdr, h.Name...)
	hdr = append(hdr, 0)
	if _, err := cw.w.Write(hdr); err != nil {
		cw.err = err
		return err
	}
	if err := cw.pad(); err != nil {
		return err
	}
	if h.Mode&fs.ModeSymlink != 0 {
		_, err := io.WriteString(cw.w, h.Linkname)
		cw.err = err
		return err
	}
	cw.remain = size
	return nil
}

// Write writes data of the current entry.
func (cw *CPIOWriter) Write(p []byte) (int, error) {
	if cw.err != nil {
		return 0, cw.err
	}
	if int64(len(p)) > cw.remain {
		return 0, errors.New("writing cpio data: more than the header's size")
	}
	n, err := cw.w.Write(p)
	cw.remain -= int64(n)
	cw.err = err
	return n, err
}

// Close writes the trailer entry. It does not close the underlying writer.
func (cw *CPIOWriter) Close() error {
	if err := cw.WriteHeader(CPIOHeader{Name: cpioTrailer, Ino: -1}); err != nil {
		return err
	}
	return cw.pad()
}

func (cw *CPIOWriter) pad() error {
	if n := cw.w.n % 4; n != 0 {
		_, err := cw.w.Write(make([]byte, 4-n))
		cw.err = err
		return err
	}
	return nil
}

// CPIOReader reads a newc archive written by CPIOWriter or by cpio(1).
type CPIOReader struct {
	r      *bufio.Reader
	off    int64
	remain int64
}

// NewCPIOReader returns a reader of the archive in r.
func NewCPIOReader(r io.Reader) *CPIOReader {
	return &CPIOReader{r: bufio.NewReader(r)}
}

// Next advances to the next entry and returns its header. It returns
// io.EOF after the trailer.
func (cr *CPIOReader) Next() (CPIOHeader, error) {
	if cr.remain > 0 {
		if _, err := cr.discard(cr.remain); err != nil {
			return CPIOHeader{}, err
		}
		cr.remain = 0
	}
	if err := cr.align(); err != nil {
		return CPIOHeader{}, err
	}
	hdr := make([]byte, cpioHdrLen)
	if _, err := cr.read(hdr); err != nil {
		return CPIOHeader{}, fmt.Errorf("reading cpio header: %w", err)
	}
	if string(hdr[:6]) != cpioMagic {
		return CPIOHeader{}, fmt.Errorf("reading cpio header at %d: bad magic %q", cr.off-cpioHdrLen, hdr[:6])
	}
	var f [13]int64
	for i := range f {
		v, err := strconv.ParseUint(string(hdr[6+8*i:14+8*i]), 16, 32)
		if err != nil {
			return CPIOHeader{}, fmt.Errorf("reading cpio header field %d: %w", i, err)
		}
		f[i] = int64(v)
	}
	name := make([]byte, f[11])
	if _, err := cr.read(name); err != nil {
		return CPIOHeader{}, fmt.Errorf("reading cpio name: %w", err)
	}
	h := CPIOHeader{
		Name: string(name[:len(name)-1]), Ino: int(f[0]), Mode: fileMode(f[1]),
		UID: int(f[2]), GID: int(f[3]), Nlink: int(f[4]), Mtime: f[5], Size: f[6],
		DevMajor: int(f[9]), DevMinor: int(f[10]),
	}
	if h.Name == cpioTrailer {
		return h, io.EOF
	}
	if err := cr.align(); err != nil {
		return CPIOHeader{}, err
	}
	cr.remain = h.Size
	if h.Mode&fs.ModeSymlink != 0 {
		link := make([]byte, h.Size)
		if _, err := cr.read(link); err != nil {
			return CPIOHeader{}, fmt.Errorf("reading cpio symlink %s: %w", h.Name, err)
		}
		h.Linkname = string(link)
		cr.remain = 0
	}
	return h, nil
}

// Read reads data of the current entry.
func (cr *CPIOReader) Read(p []byte) (int, error) {
	if cr.remain == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > cr.remain {
		p = p[:cr.remain]
	}
	n, err := cr.r.Read(p)
	cr.off += int64(n)
	cr.remain -= int64(n)
	return n, err
}

func (cr *CPIOReader) read(p []byte) (int, error) {
	n, err := io.ReadFull(cr.r, p)
	cr.off += int64(n)
	return n, err
}

func (cr *CPIOReader) discard(n int64) (int, error) {
	d, err := cr.r.Discard(int(n))
	cr.off += int64(d)
	return d, err
}

func (cr *CPIOReader) align() error {
	if n := cr.off % 4; n != 0 {
		if _, err := cr.discard(4 - n); err != nil {
			return fmt.Errorf("reading cpio padding: %w", err)
		}
	}
	return nil
}
