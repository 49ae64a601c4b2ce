package daemon

import (
	"fmt"
	"net/http"
	"os"
	"strings"

	"banger/internal/api"
	"banger/internal/preflight"
)

// handleDoctor answers `banger doctor`: every check the daemon runs before
// an operation, once, plus the host facts and the daemon's own state. The
// CLI renders it and probes nothing itself.
func (d *Daemon) handleDoctor(w http.ResponseWriter, r *http.Request) {
	var checks []api.Check
	if d.deps.Preflight != nil {
		checks = d.deps.Preflight.Report(r.Context())
	}
	daemon := api.Check{Name: "daemon", Status: api.CheckOK,
		Detail: fmt.Sprintf("bangerd %s running, pid %d, log %s", d.cfg.Version, os.Getpid(), d.cfg.Paths.DaemonLog())}
	if missing := d.missingLayers(preflight.Ops()...); len(missing) > 0 {
		daemon.Status = api.CheckFail
		daemon.Detail = "built without host layers (" + strings.Join(missing, ", ") + "): it cannot run VMs"
		daemon.Fix = "install the banger release build; `banger daemon logs` shows what it started with"
	}
	runtime := api.Check{Name: "runtime", Status: api.CheckOK, Detail: "no runtime bundle: images come from `banger image bootstrap`"}
	if d.deps.Runtime != nil {
		runtime.Detail = "runtime bundle " + d.deps.Runtime.Describe() + "; its files are the image " + BundleImage
	}
	writeJSON(w, http.StatusOK, append(checks, runtime, d.checkLine(r.Context()), daemon))
}
