package disk

import (
	"context"
	"errors"
	"fmt"
)

// WorkLabel is the ext4 label of every work disk; guests mount it by label.
const WorkLabel = "banger-work"

// MinWorkSize is the smallest work disk CreateWork makes.
const MinWorkSize = 16 << 20

// MkfsWorkArgv is the command that formats a work disk file (see mkfsArgv).
func MkfsWorkArgv(path string) []string { return mkfsArgv(WorkLabel, path) }

// CreateWork makes a new sparse file of size bytes at path holding an empty
// ext4 filesystem labelled banger-work. It formats the file directly (no
// loop device, no mount), under a temporary name renamed into place at the
// end. An existing path is an error, never overwritten.
func (m *Manager) CreateWork(ctx context.Context, path string, size int64) error {
	if err := checkSize(size); err != nil {
		return fmt.Errorf("creating work disk %s: %w", path, err)
	}
	if size < MinWorkSize {
		return fmt.Errorf("creating work disk %s: size %d is below the minimum of %d MiB", path, size, MinWorkSize>>20)
	}
	err := m.blank(ctx, WorkTemplate(size), size, path, func(ctx context.Context, file string) error {
		_, err := m.tool(ctx, MkfsWorkArgv(file)...)
		return err
	})
	if err != nil {
		return fmt.Errorf("creating work disk %s: %w", path, err)
	}
	m.log.Debug("created work disk", "path", path, "size", size)
	return nil
}

// checkSize rejects sizes that are not a positive whole number of 4 KiB
// blocks, the unit of ext4 and of the VMMs' block devices.
func checkSize(size int64) error {
	if size <= 0 || size%4096 != 0 {
		return errors.New("size must be a positive multiple of 4 KiB (e.g. 8G, 512M)")
	}
	return nil
}
