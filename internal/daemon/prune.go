package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"banger/internal/api"
	"banger/internal/bootstrap"
	"banger/internal/config"
	"banger/internal/disk"
	"banger/internal/image"
	"banger/internal/vm"
)

// maxLogDays bounds a prune's log age (a hundred years), far below where
// the age in nanoseconds would overflow and reach into the future.
const maxLogDays = 36500

// handlePruneImages answers `banger image prune`: it removes what banger
// keeps only for speed and what is left of failed builds, never an
// image's or a VM's files.
func (d *Daemon) handlePruneImages(w http.ResponseWriter, r *http.Request) {
	var req api.PruneRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.LogDays < 1 || req.LogDays > maxLogDays {
		writeError(w, api.Errorf(api.CodeInvalid, "pruning build logs older than %d days: use 1 day or more, at most %d", req.LogDays, maxLogDays).
			WithHint("`banger image prune --logs-older-than 30` keeps a month of build logs"))
		return
	}
	res, err := d.prune(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// prune removes (or, for a dry run, lists) bootstrap cache entries whose
// image no registered image has, blank disk templates no create would
// take, and build logs older than req.LogDays that no image points to.
func (d *Daemon) prune(ctx context.Context, req api.PruneRequest) (api.PruneResult, error) {
	res := api.PruneResult{DryRun: req.DryRun, Items: []api.PruneItem{}}
	imgs, err := d.store.Images(ctx)
	if err != nil {
		return res, err
	}
	vms, err := d.store.VMs(ctx)
	if err != nil {
		return res, err
	}
	var errs []error
	add := func(kind string, removed []bootstrap.Removal, err error) {
		for _, r := range removed {
			res.Items = append(res.Items, api.PruneItem{Kind: kind, Path: r.Path, Bytes: r.Bytes, Why: r.Why})
			res.Bytes += r.Bytes
		}
		if err != nil {
			errs = append(errs, err)
		}
	}

	// An image bootstrap holds pruneMu (read) from before its cache lookup
	// until its image is registered, so no entry is judged unused while
	// its image is being made.
	if d.pruneMu.TryLock() {
		manifests := map[string]bool{}
		for _, img := range imgs {
			if img.ManifestSHA256 != "" {
				manifests[img.ManifestSHA256] = true
			}
		}
		removed, err := bootstrap.PruneCache(bootstrapCacheDir(d.cfg.Paths), func(sha string) bool { return manifests[sha] }, req.DryRun)
		d.pruneMu.Unlock()
		if errors.Is(err, bootstrap.ErrCacheBusy) {
			res.Skipped = append(res.Skipped, "bootstrap cache: a bootstrap is using it")
			err = nil
		} else if err != nil {
			err = fmt.Errorf("pruning the bootstrap cache: %w", err)
		}
		add(api.PruneCache, removed, err)
	} else {
		res.Skipped = append(res.Skipped, "bootstrap cache: an image bootstrap is running")
	}

	inUse := d.templatesInUse(imgs, vms)
	removed, err := pruneFiles(d.cfg.Paths.DiskTemplates(), req.DryRun, func(e os.DirEntry, _ os.FileInfo) string {
		if disk.IsTemplate(e.Name()) && !inUse[e.Name()] {
			return "blank disk template no new VM would use"
		}
		return ""
	})
	add(api.PruneTemplate, removed, err)

	logs := map[string]bool{}
	for _, img := range imgs {
		logs[img.BuildLog] = true
	}
	cutoff := d.deps.Now().Add(-time.Duration(req.LogDays) * 24 * time.Hour)
	removed, err = pruneFiles(buildLogDir(d.cfg.Paths), req.DryRun, func(e os.DirEntry, info os.FileInfo) string {
		p := filepath.Join(buildLogDir(d.cfg.Paths), e.Name())
		if strings.HasSuffix(e.Name(), ".log") && !logs[p] && info.ModTime().Before(cutoff) {
			return fmt.Sprintf("build log older than %d days", req.LogDays)
		}
		return ""
	})
	add(api.PruneLog, removed, err)

	items, err := d.pruneTemplates(ctx, imgs, vms, req.DryRun)
	res.Items, errs = append(res.Items, items...), append(errs, err) // errors.Join drops a nil
	for _, it := range items {
		res.Bytes += it.Bytes
	}

	sort.SliceStable(res.Items, func(i, j int) bool { return res.Items[i].Kind < res.Items[j].Kind })
	if !req.DryRun {
		d.log.Info("pruned", "items", len(res.Items), "bytes", res.Bytes)
	}
	return res, errors.Join(errs...)
}

// templatesInUse are the blank disk templates a create could take: the
// work disk of the configured default size and of every VM's size, and
// the layer over each image at its own size.
func (d *Daemon) templatesInUse(imgs []image.Image, vms []vm.VM) map[string]bool {
	keep := map[string]bool{disk.WorkTemplate(config.MustSize(d.cfg.DefaultDisk)): true}
	for _, v := range vms {
		keep[disk.WorkTemplate(v.DiskBytes)] = true
	}
	for _, img := range imgs {
		keep[disk.LayerTemplate(max(img.SizeBytes, disk.MinLayerSize))] = true
	}
	return keep
}

// pruneFiles removes the regular files directly in dir for which why
// returns a reason (only lists them for a dry run). A missing dir holds
// nothing.
func pruneFiles(dir string, dryRun bool, why func(os.DirEntry, os.FileInfo) string) ([]bootstrap.Removal, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("pruning %s: %w", dir, err)
	}
	var out []bootstrap.Removal
	var errs []error
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		reason := why(e, info)
		if reason == "" {
			continue
		}
		p := filepath.Join(dir, e.Name())
		r := bootstrap.Removal{Path: p, Bytes: allocated(p), Why: reason}
		if !dryRun {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("removing %s: %w", p, err))
				continue
			}
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

// bootstrapCacheDir is where image bootstraps keep downloads and finished
// images.
func bootstrapCacheDir(p config.Paths) string { return filepath.Join(p.CacheDir, "bootstrap") }

// buildLogDir holds the logs of builds and bootstraps that failed (a
// finished image keeps its log in its own directory).
func buildLogDir(p config.Paths) string { return filepath.Join(p.StateDir, "builds") }

// pruneTemplates removes the stale warm templates (staleTemplates), or
// lists them in a dry run.
func (d *Daemon) pruneTemplates(ctx context.Context, imgs []image.Image, vms []vm.VM, dryRun bool) ([]api.PruneItem, error) {
	var items []api.PruneItem
	var errs []error
	for _, t := range staleTemplates(imgs, vms) {
		item := api.PruneItem{Kind: api.PruneWarm, Path: t.Dir,
			Why:   "warm template " + t.Name + " of an image that was rebuilt or removed, or left " + string(t.State),
			Bytes: allocated(t.LayerDisk()) + allocated(t.RootDisk()) + allocated(t.WorkDisk()) + suspendBytes(&t)}
		if !dryRun {
			if err := d.removeVM(ctx, t.Name, true, nil); err != nil {
				errs = append(errs, fmt.Errorf("removing warm template %s: %w", t.Name, err))
				continue
			}
		}
		items = append(items, item)
	}
	return items, errors.Join(errs...)
}
