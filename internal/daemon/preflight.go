package daemon

import (
	"context"
	"strings"

	"banger/internal/api"
	"banger/internal/preflight"
)

// missingLayers names the host layers that ops need and this daemon was
// built without, each once.
func (d *Daemon) missingLayers(ops ...preflight.Op) []string {
	have := map[preflight.Layer]bool{
		preflight.Disks: d.deps.Disks != nil, preflight.Network: d.deps.Network != nil, preflight.VMM: d.deps.VMM != nil,
		preflight.Guest: d.deps.Guest != nil, preflight.Bootstrap: d.deps.Bootstrap != nil,
	}
	var missing []string
	seen := map[preflight.Layer]bool{}
	for _, op := range ops {
		for _, l := range op.Layers() {
			if !have[l] && !seen[l] {
				seen[l] = true
				missing = append(missing, string(l))
			}
		}
	}
	return missing
}

// preflight checks that this daemon has the layers ops need and that the
// host has the tools; the error names every problem and its fix.
func (d *Daemon) preflight(ctx context.Context, ops ...preflight.Op) error {
	if missing := d.missingLayers(ops...); len(missing) > 0 {
		return api.Errorf(api.CodePrecondition, "cannot %s: this bangerd was built without the host layers it needs (%s)", ops[0], strings.Join(missing, ", ")).
			WithHint("this build of banger cannot run VMs yet; `banger doctor` lists what the host lacks")
	}
	if d.deps.Preflight != nil {
		return d.deps.Preflight.Check(ctx, ops...)
	}
	return nil
}
