package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"banger/internal/vm"
)

// orphanBuildVM reports whether v is a temporary build VM that no build in
// this daemon owns: a daemon crash or restart interrupted its build.
func (d *Daemon) orphanBuildVM(v *vm.VM) bool {
	return v.Hidden && !d.locks.busy(buildKey(v.Name)) && !d.locks.busy(vmKey(v.Name))
}

// removeOrphanBuildVM removes an orphaned build VM and everything it holds.
func (d *Daemon) removeOrphanBuildVM(ctx context.Context, v *vm.VM) error {
	d.log.Warn("removing temporary build vm whose build is gone", "vm", v.Name, "state", v.State)
	return d.dropBuildVM(ctx, v.Name)
}

// sweepBuildStages removes staging directories (images/.build-<id>,
// images/.commit-<id>, images/.<name>-<id>.bootstrap-*) of builds, commits
// and bootstraps that are not running.
func (d *Daemon) sweepBuildStages() error {
	dir := d.cfg.Paths.ImagesDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var errs []error
	for _, e := range entries {
		op, ok := strings.CutPrefix(e.Name(), ".")
		if !ok {
			continue
		}
		// A bootstrap stages its result as ".<name>-<id>.bootstrap-XXXX".
		if target, _, isBootstrap := strings.Cut(op, ".bootstrap-"); isBootstrap {
			name := target
			if i := strings.LastIndexByte(target, '-'); i > 0 {
				name = target[:i]
			}
			if d.locks.busy(imageKey(name)) {
				continue
			}
		} else if !(strings.HasPrefix(op, "build-") || strings.HasPrefix(op, "commit-")) || d.locks.busy(buildKey(op)) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		d.log.Info("removing half-made image without a build", "path", path)
		errs = append(errs, os.RemoveAll(path))
	}
	return errors.Join(errs...)
}
