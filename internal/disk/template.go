package disk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Blank disks (an empty work disk, an empty layer) are the same for every
// VM of a size: making one runs mkfs.ext4, and debugfs for a layer, 10 to
// 20 ms of CPU each. With Deps.Templates set, the Manager makes each kind
// and size once into that directory and gives every new disk a copy of it
// (reflink, else a sparse copy of the 1 to 4 MiB mkfs wrote): a few
// milliseconds. The copies share the template's file system UUID, which
// nothing relies on: guests mount their disks by label, one VM each, and
// the host never mounts them.

// maxTemplates bounds the templates kept; the least recently used go.
const maxTemplates = 8

// WorkTemplate is the file name, in the template directory, of the blank
// work disk of size bytes; LayerTemplate that of the blank layer. The name
// carries a hash of the command that formats the disk, so a template made
// by an older recipe is never taken (and `image prune` removes it).
func WorkTemplate(size int64) string { return templateName("work", size, MkfsWorkArgv("")) }

// LayerTemplate is the template file name of the blank layer of size
// bytes (see WorkTemplate).
func LayerTemplate(size int64) string {
	return templateName("layer", size, append(MkfsLayerArgv(""), layerUpper, layerWork))
}

func templateName(kind string, size int64, recipe []string) string {
	sum := sha256.Sum256([]byte(strings.Join(recipe, "\x00")))
	return fmt.Sprintf("%s-%d-%s.ext4", kind, size, hex.EncodeToString(sum[:6]))
}

// IsTemplate reports whether a file name in the template directory is a
// finished template (not a temporary file being written).
func IsTemplate(name string) bool {
	return strings.HasSuffix(name, ".ext4") && !strings.HasPrefix(name, ".") && (strings.HasPrefix(name, "work-") || strings.HasPrefix(name, "layer-"))
}

// blank makes the new disk at path, size bytes, formatted by format (which
// is given a sparse file of that size to fill). With a template directory
// it copies the template called name, making it first when there is none
// (or when it went away meanwhile: `image prune` may remove it). An
// existing path is an error, never overwritten.
func (m *Manager) blank(ctx context.Context, name string, size int64, path string, format func(ctx context.Context, file string) error) error {
	if _, err := os.Lstat(path); err == nil {
		return fs.ErrExist
	}
	fill := func(f *os.File) error {
		if err := f.Truncate(size); err != nil {
			return err
		}
		return format(ctx, f.Name())
	}
	if m.templates == "" {
		return writeAtomically(path, fill)
	}
	tpl := filepath.Join(m.templates, name)
	for attempt := 0; ; attempt++ {
		if _, err := os.Stat(tpl); errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(m.templates, 0o700); err != nil {
				return fmt.Errorf("making the disk template directory: %w", err)
			}
			// Two creates may make the same template at once: the second
			// rename finds the first's file, which is as good.
			if err := writeAtomically(tpl, fill); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("making the disk template %s: %w", tpl, err)
			}
			m.log.Debug("made disk template", "path", tpl)
			m.pruneTemplates(tpl)
		}
		now := time.Now()
		_ = os.Chtimes(tpl, now, now) // most recently used: kept by pruneTemplates
		_, err := cloneFile(ctx, tpl, path, reflinkOrCopy)
		if err != nil && errors.Is(err, fs.ErrNotExist) && attempt == 0 {
			if _, serr := os.Stat(tpl); errors.Is(serr, fs.ErrNotExist) {
				continue // the template was removed between the check and the copy
			}
		}
		return err
	}
}

// pruneTemplates removes the least recently used templates beyond
// maxTemplates, never keep.
func (m *Manager) pruneTemplates(keep string) {
	paths, err := filepath.Glob(filepath.Join(m.templates, "*.ext4"))
	if err != nil || len(paths) <= maxTemplates {
		return
	}
	mtime := func(p string) time.Time {
		st, err := os.Stat(p)
		if err != nil {
			return time.Time{}
		}
		return st.ModTime()
	}
	sort.Slice(paths, func(i, j int) bool { return mtime(paths[i]).After(mtime(paths[j])) })
	for _, p := range paths[maxTemplates:] {
		if p != keep {
			_ = os.Remove(p)
		}
	}
}
