package daemon

import (
	"context"

	"banger/internal/vm"
)

// orphanBuildVM reports whether v is a temporary build VM that no build in
// this daemon owns: a daemon crash or restart interrupted its build.
func (d *Daemon) orphanBuildVM(v *vm.VM) bool {
	return v.Hidden && !isTemplate(v) && !d.locks.busy(buildKey(v.Name)) && !d.locks.busy(vmKey(v.Name))
}

// removeOrphanBuildVM removes an orphaned build VM and everything it holds.
func (d *Daemon) removeOrphanBuildVM(ctx context.Context, v *vm.VM) error {
	d.log.Warn("removing temporary build vm whose build is gone", "vm", v.Name, "state", v.State)
	return d.dropBuildVM(ctx, v.Name)
}
