package qemuvmm

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// newRAM returns a memfd of memMiB MiB for guest RAM. QEMU maps it shared
// through /proc/self/fd; this process keeps its own descriptor so that a
// snapshot can copy the memory without QEMU streaming it.
func newRAM(memMiB int64) (*os.File, error) {
	fd, err := unix.MemfdCreate("banger-vmm-qemu-ram", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("creating the guest memory (memfd_create): %w", err)
	}
	f := os.NewFile(uintptr(fd), "guest-ram")
	if err := f.Truncate(memMiB << 20); err != nil {
		f.Close()
		return nil, fmt.Errorf("sizing the guest memory to %d MiB: %w", memMiB, err)
	}
	return f, nil
}

// copySparse copies src into dst at the same offsets, only the ranges that
// hold data (SEEK_DATA/SEEK_HOLE), and gives dst src's size: pages the
// guest never touched stay holes on both sides. It returns the bytes copied.
func copySparse(dst, src *os.File) (int64, error) {
	st, err := src.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	if err := dst.Truncate(size); err != nil {
		return 0, err
	}
	sfd, dfd := int(src.Fd()), int(dst.Fd())
	var copied int64
	for off := int64(0); off < size; {
		data, err := unix.Seek(sfd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // no data after off
		}
		if err != nil {
			return copied, fmt.Errorf("finding data in %s: %w", src.Name(), err)
		}
		hole, err := unix.Seek(sfd, data, unix.SEEK_HOLE)
		if err != nil {
			return copied, fmt.Errorf("finding holes in %s: %w", src.Name(), err)
		}
		if _, err := unix.Seek(dfd, data, io.SeekStart); err != nil {
			return copied, err
		}
		for pos := data; pos < hole; {
			p := pos
			n, err := unix.Sendfile(dfd, sfd, &p, int(min(hole-pos, 1<<30)))
			if err != nil {
				return copied, fmt.Errorf("copying %s: %w", src.Name(), err)
			}
			if n == 0 {
				return copied, io.ErrUnexpectedEOF
			}
			pos += int64(n)
			copied += int64(n)
		}
		off = hole
	}
	return copied, nil
}
