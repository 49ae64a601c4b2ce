package hostsetup

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"banger/internal/allocation"
)

// installHelper copies the helper binary from src to dst (mode 0755, owned
// by root), into a directory made root-owned and checked so that no user
// can replace the program sudo will run as root. An identical dst is left
// alone. It reports whether it wrote.
func installHelper(src, dst string, owner int) (bool, error) {
	if err := checkSudoersPath(dst); err != nil {
		return false, fmt.Errorf("installing the helper: %w", err)
	}
	data, err := readExecutable(src)
	if err != nil {
		return false, err
	}
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("installing the helper: %w", err)
	}
	if err := allocation.CheckTrustedPath(dir, owner); err != nil {
		return false, fmt.Errorf("installing the helper into %s: %w", dir, err)
	}
	if cur, err := os.ReadFile(dst); err == nil && bytes.Equal(cur, data) {
		if err := allocation.CheckTrustedPath(dst, owner); err == nil {
			return false, nil
		}
	}
	tmp, err := os.CreateTemp(dir, ".banger-helper.*")
	if err != nil {
		return false, fmt.Errorf("installing the helper: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, fmt.Errorf("installing the helper: %w", err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return false, fmt.Errorf("installing the helper: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, fmt.Errorf("installing the helper: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("installing the helper: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return false, fmt.Errorf("installing the helper: %w", err)
	}
	if err := allocation.CheckTrustedPath(dst, owner); err != nil {
		return true, fmt.Errorf("installing the helper: %w", err)
	}
	return true, nil
}

// readExecutable reads a regular, executable file.
func readExecutable(src string) ([]byte, error) {
	f, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("reading the helper to install: %w (build it with `make build`, or name it with --helper)", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading the helper to install: %w", err)
	}
	if !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("reading the helper to install: %s is not an executable file", src)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("reading the helper to install: %w", err)
	}
	return data, nil
}
