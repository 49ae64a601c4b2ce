package daemon

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"banger/internal/api"
	"banger/internal/disk"
	"banger/internal/preflight"
	"banger/internal/vm"
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
	checks = append(checks, runtime, d.checkLine(r.Context()), daemon)
	writeJSON(w, http.StatusOK, append(checks, d.diskUse(r.Context())...))
}

// diskUse is one doctor line per kind of file banger keeps: what it
// occupies on disk, how many, and where. `banger image prune` removes what
// the cache, templates and logs hold beyond what images and VMs need.
func (d *Daemon) diskUse(ctx context.Context) []api.Check {
	p := d.cfg.Paths
	imgs, err := d.store.Images(ctx)
	if err != nil {
		return []api.Check{{Name: "disk use", Status: api.CheckWarn, Detail: "reading the images: " + err.Error()}}
	}
	vms, err := d.store.VMs(ctx)
	if err != nil {
		return []api.Check{{Name: "disk use", Status: api.CheckWarn, Detail: "reading the vms: " + err.Error()}}
	}
	kinds := []struct {
		name  string
		paths []string
		count string
	}{
		{"images", []string{p.ImagesDir()}, plural(len(imgs), "image")},
		{"vms", []string{filepath.Join(p.DataDir, "vms")}, plural(len(vms), "vm")},
		{"cache", []string{p.CacheDir}, ""},
		{"templates", []string{p.DiskTemplates()}, ""},
		{"logs", []string{buildLogDir(p), filepath.Join(p.StateDir, "vms"), p.DaemonLog()}, ""},
	}
	out := make([]api.Check, 0, len(kinds))
	for _, k := range kinds {
		c := api.Check{Name: "disk: " + k.name, Status: api.CheckOK}
		var bytes int64
		files := 0
		for _, path := range k.paths {
			b, n, err := disk.Usage(path)
			if err != nil {
				c.Status, c.Fix = api.CheckWarn, err.Error()
			}
			bytes += b
			files += n
		}
		count := k.count
		if count == "" {
			count = plural(files, "file")
		}
		c.Detail = fmt.Sprintf("%s in %s (%s)", vm.FormatSize(bytes), count, k.paths[0])
		if k.name == "cache" || k.name == "templates" || k.name == "logs" {
			c.Detail += "; `banger image prune` removes what no image or VM needs"
		}
		out = append(out, c)
	}
	return out
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
