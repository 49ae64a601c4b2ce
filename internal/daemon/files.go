package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// removeSockets removes a VM's API socket and the sockets its VMM made
// beside it (banger-vmm-qemu's "<socket>.qmp").
func removeSockets(socket string) error {
	matches, _ := filepath.Glob(socket + ".*")
	var errs []error
	for _, p := range append([]string{socket}, matches...) {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing socket %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// allocated returns the bytes a file really occupies on disk (sparse files
// occupy less than their size), or 0 when it does not exist.
func allocated(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return sys.Blocks * 512
	}
	return st.Size()
}
