package disk

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
)

// Usage returns the bytes the files under path occupy on disk (sparse
// files count what they really hold; a file with several hard links
// counts once) and how many regular files there are. A missing path is
// zero, not an error; entries that vanish during the walk are skipped.
func Usage(path string) (bytes int64, files int, err error) {
	seen := map[[2]uint64]bool{}
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			bytes += info.Size()
			return nil
		}
		key := [2]uint64{st.Dev, st.Ino}
		if seen[key] {
			return nil
		}
		seen[key] = true
		bytes += st.Blocks * 512
		if d.Type().IsRegular() {
			files++
		}
		return nil
	})
	if err != nil {
		return bytes, files, fmt.Errorf("measuring %s: %w", path, err)
	}
	return bytes, files, nil
}
