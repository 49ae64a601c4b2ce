package disk

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ReflinkSupported reports whether files in dir can be cloned with FICLONE,
// by cloning a small temporary file. Without reflinks, root disks are
// sparse copies: correct, but slower to make and not sharing blocks.
func ReflinkSupported(dir string) (bool, error) {
	src, err := os.CreateTemp(dir, ".banger-reflink-probe-*")
	if err != nil {
		return false, fmt.Errorf("probing reflink support in %s: %w", dir, err)
	}
	defer os.Remove(src.Name())
	defer src.Close()
	if _, err := src.Write(make([]byte, 4096)); err != nil {
		return false, fmt.Errorf("probing reflink support in %s: %w", dir, err)
	}
	dst, err := os.CreateTemp(dir, ".banger-reflink-probe-*")
	if err != nil {
		return false, fmt.Errorf("probing reflink support in %s: %w", dir, err)
	}
	defer os.Remove(dst.Name())
	defer dst.Close()
	err = unix.IoctlFileClone(int(dst.Fd()), int(src.Fd()))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EXDEV), errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOTTY), errors.Is(err, unix.ENOSYS):
		return false, nil
	default:
		return false, fmt.Errorf("probing reflink support in %s: %w", dir, err)
	}
}
