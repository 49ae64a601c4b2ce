package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"

	"banger/internal/api"
	"banger/internal/vm"
)

// check compares the host with the database: every leftover (something
// banger made that no row owns) and everything a row expects that the
// host lacks. VMs and images an operation holds are skipped.
func (d *Daemon) check(ctx context.Context) ([]api.Finding, error) {
	// One listing of the host serves both halves.
	h, err := d.listHost(ctx)
	if err != nil {
		return nil, err
	}
	left, err := d.leftoversOf(ctx, h, true)
	if err != nil {
		return nil, err
	}
	var out []api.Finding
	for _, l := range left {
		out = append(out, api.Finding{Kind: l.kind, Name: l.name, Problem: api.FindingNoOwner, Detail: l.why})
	}
	missing, err := d.missing(ctx, h.taps)
	if err != nil {
		return nil, err
	}
	return append(out, missing...), nil
}

// missing lists what the rows expect on the host and is not there; taps
// are the host's banger TAPs.
func (d *Daemon) missing(ctx context.Context, taps []string) ([]api.Finding, error) {
	vms, err := d.store.VMs(ctx)
	if err != nil {
		return nil, err
	}
	var out []api.Finding
	miss := func(kind, name, detail string) {
		out = append(out, api.Finding{Kind: kind, Name: name, Problem: api.FindingMissing, Detail: detail})
	}
	for i := range vms {
		v := &vms[i]
		if v.State == vm.Creating || v.State == vm.Removing || d.locks.busy(vmKey(v.Name)) {
			continue
		}
		if v.HoldsVMM() && !d.vmmAlive(v) {
			miss("vmm process", v.Name, fmt.Sprintf("vm %s is running in the database, but its VMM (pid %d) is gone", v.Name, v.Process.PID))
		}
		if v.HoldsVMM() && d.deps.Network != nil && v.TAP != "" && !slices.Contains(taps, v.TAP) {
			miss("tap", v.Name, fmt.Sprintf("running vm %s has no tap %s", v.Name, v.TAP))
		}
		disks := []struct{ kind, path string }{{"root disk", v.WritableRoot()}}
		if v.LayoutOrClone() == vm.Layered {
			disks = append(disks, struct{ kind, path string }{"image file", v.Base})
		}
		if v.DiskBytes > 0 {
			disks = append(disks, struct{ kind, path string }{"work disk", v.WorkDisk()})
		}
		for _, f := range disks {
			if _, err := os.Stat(f.path); errors.Is(err, os.ErrNotExist) {
				miss(f.kind, v.Name, fmt.Sprintf("vm %s's %s %s does not exist", v.Name, f.kind, f.path))
			}
		}
	}
	imgs, err := d.store.Images(ctx)
	if err != nil {
		return nil, err
	}
	for _, img := range imgs {
		if d.locks.busy(imageKey(img.Name)) {
			continue
		}
		for _, p := range []string{img.Kernel, img.Initrd, img.Rootfs} {
			if p == "" {
				continue
			}
			if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
				miss("image file", img.Name, fmt.Sprintf("image %s's file %s does not exist", img.Name, p))
			}
		}
	}
	return out, nil
}

// fix does what reconcile does, removes image directories no image owns,
// and reports what it repaired and what is still off.
func (d *Daemon) fix(ctx context.Context) (api.CheckReport, error) {
	before, err := d.check(ctx)
	if err != nil {
		return api.CheckReport{Error: err.Error()}, err
	}
	errs := []error{d.Reconcile(ctx)}
	left, err := d.leftovers(ctx, true)
	if err != nil {
		return api.CheckReport{Findings: before}, err
	}
	for _, l := range left {
		d.log.Info("system check --fix: removing", "kind", l.kind, "name", l.name, "why", l.why)
		if err := l.remove(ctx); err != nil {
			errs = append(errs, fmt.Errorf("removing %s %s: %w", l.kind, l.name, err))
		}
	}
	after, err := d.check(ctx)
	if err != nil {
		return api.CheckReport{Findings: before}, err
	}
	rep := api.CheckReport{Findings: after}
	for _, f := range before {
		if !slices.Contains(after, f) {
			rep.Fixed = append(rep.Fixed, f)
		}
	}
	return rep, errors.Join(errs...)
}

func (d *Daemon) handleCheck(w http.ResponseWriter, r *http.Request) {
	findings, err := d.check(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.CheckReport{Findings: findings})
}

func (d *Daemon) handleFix(w http.ResponseWriter, r *http.Request) {
	rep, err := d.fix(r.Context())
	if err != nil {
		d.log.Warn("system check --fix", "err", err)
		rep.Error = err.Error()
	}
	writeJSON(w, http.StatusOK, rep)
}

// checkLine is doctor's line for system check.
func (d *Daemon) checkLine(ctx context.Context) api.Check {
	findings, err := d.check(ctx)
	switch {
	case err != nil:
		return api.Check{Name: "leaks", Status: api.CheckWarn, Detail: "comparing the host with the database: " + err.Error()}
	case len(findings) == 0:
		return api.Check{Name: "leaks", Status: api.CheckOK, Detail: "the host matches the database: nothing without an owner, nothing missing"}
	}
	return api.Check{Name: "leaks", Status: api.CheckWarn, Detail: fmt.Sprintf("%d differences between the host and the database (%s %s: %s, ...)", len(findings), findings[0].Kind, findings[0].Name, findings[0].Problem),
		Fix: "`banger system check` lists them; `banger system check --fix` repairs them"}
}
