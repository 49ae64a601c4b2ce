package daemon

import (
	"os"
	"syscall"
)

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
