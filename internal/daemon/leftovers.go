package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"banger/internal/disk"
	"banger/internal/vm"
)

// A leftover is something banger made on the host that no database row
// owns. Reconcile removes leftovers; `banger system check` lists them.
type leftover struct {
	kind string // "tap", "vm directory", "socket", "vmm process", ...
	name string // the device, path or pid
	// why names what the leftover was for, when known.
	why    string
	remove func(ctx context.Context) error
}

// hostListing is what leftovers reads from the host, before the database.
type hostListing struct {
	taps    []string
	entries map[string][]os.DirEntry // of the VM parents and the images directory
	serving map[string]vm.Process
	temps   []string
}

// vmParents are the directories holding per-VM entries: data, state and
// runtime (sockets), in that order.
func (d *Daemon) vmParents() []string {
	p := d.cfg.Paths
	return []string{filepath.Join(p.DataDir, "vms"), filepath.Join(p.StateDir, "vms"), filepath.Join(p.RuntimeDir, "vms")}
}

func (d *Daemon) listHost(ctx context.Context) (hostListing, error) {
	p := d.cfg.Paths
	h := hostListing{entries: map[string][]os.DirEntry{}}
	if d.deps.Network != nil {
		var err error
		if h.taps, err = d.deps.Network.TAPs(ctx); err != nil {
			return h, fmt.Errorf("listing taps: %w", err)
		}
	}
	for _, dir := range append(d.vmParents(), p.ImagesDir()) {
		h.entries[dir], _ = os.ReadDir(dir)
	}
	if d.deps.VMM != nil {
		h.serving = d.deps.VMM.Serving()
	}
	h.temps, _ = disk.TempsBefore(p.DiskTemplates(), d.deps.Now().Add(-time.Minute))
	return h, nil
}

// leftovers lists what banger made on the host and no row owns. The host
// is listed before the database is read, so a create, which records its
// VM before it makes anything, is never mistaken for a leftover. Image
// directories without a row are listed only when images is set: they are
// reported and removed on request, never by reconcile alone.
func (d *Daemon) leftovers(ctx context.Context, images bool) ([]leftover, error) {
	h, err := d.listHost(ctx)
	if err != nil {
		return nil, err
	}
	return d.leftoversOf(ctx, h, images)
}

// leftoversOf is leftovers of a host listing already made.
func (d *Daemon) leftoversOf(ctx context.Context, h hostListing, images bool) ([]leftover, error) {
	vms, err := d.store.VMs(ctx)
	if err != nil {
		return nil, err
	}
	byID := map[string]*vm.VM{}
	for i := range vms {
		byID[vms[i].ID] = &vms[i]
	}
	out := d.leftoverTAPs(h.taps, vms)
	out = append(out, d.leftoverVMMs(h.serving, byID)...)
	out = append(out, d.leftoverVMFiles(h.entries, byID)...)
	imagesDir := d.cfg.Paths.ImagesDir()
	for _, e := range h.entries[imagesDir] {
		path := filepath.Join(imagesDir, e.Name())
		if why, ok := d.orphanStage(e.Name()); ok {
			out = append(out, leftover{kind: "image stage", name: path, why: why, remove: removeAll(path)})
		}
	}
	if images {
		dirs, err := d.leftoverImageDirs(ctx, h.entries[imagesDir])
		if err != nil {
			return nil, err
		}
		out = append(out, dirs...)
	}
	for _, t := range h.temps {
		out = append(out, leftover{kind: "disk template temp", name: t, why: "an unfinished blank disk", remove: removeAll(t)})
	}
	return out, nil
}

// leftoverTAPs are the TAPs no VM holds: only a running VM (or one an
// operation is working on) holds its TAP; a stopped VM's TAP is a leftover.
func (d *Daemon) leftoverTAPs(taps []string, vms []vm.VM) []leftover {
	owned := map[string]bool{}
	for _, v := range vms {
		if v.TAP != "" && (v.HoldsVMM() || v.State == vm.Stopping || d.locks.busy(vmKey(v.Name))) {
			owned[v.TAP] = true
		}
	}
	var out []leftover
	for _, t := range taps {
		if !owned[t] {
			out = append(out, leftover{kind: "tap", name: t, remove: func(ctx context.Context) error { return d.deps.Network.DeleteTAP(ctx, t) }})
		}
	}
	return out
}

// leftoverVMMs are VMMs serving a socket of banger's whose VM has no row.
// (One whose VM has a row but that the row does not record is stopped by
// the VM's reconcile: stopUnrecorded.)
func (d *Daemon) leftoverVMMs(serving map[string]vm.Process, byID map[string]*vm.VM) []leftover {
	runtime := d.vmParents()[2]
	var out []leftover
	for sock, proc := range serving {
		if filepath.Dir(sock) != runtime {
			continue
		}
		id, _, _ := strings.Cut(filepath.Base(sock), ".")
		if byID[id] != nil {
			continue
		}
		orphan := &vm.VM{ID: id, Name: id, Socket: sock, Process: proc}
		out = append(out, leftover{kind: "vmm process", name: strconv.Itoa(proc.PID), why: sock, remove: func(ctx context.Context) error { return d.deps.VMM.Kill(ctx, orphan) }})
	}
	return out
}

// leftoverVMFiles are per-VM entries ("<id>", "<id>.sock", the VMM's
// helpers such as "<id>.sock.qmp") of ids without a row, and the sockets
// of VMs without a VMM: any left are a VMM's killed while it still made
// them (QEMU's monitor socket appears after the VMM's own).
func (d *Daemon) leftoverVMFiles(entries map[string][]os.DirEntry, byID map[string]*vm.VM) []leftover {
	parents := d.vmParents()
	var out []leftover
	for _, parent := range parents {
		for _, e := range entries[parent] {
			id, _, _ := strings.Cut(e.Name(), ".")
			v := byID[id]
			path := filepath.Join(parent, e.Name())
			switch {
			case v == nil:
				out = append(out, leftover{kind: "vm file", name: path, why: "no vm has id " + id, remove: removeAll(path)})
			case parent == parents[2] && !d.locks.busy(vmKey(v.Name)) && !d.vmmAlive(v):
				out = append(out, leftover{kind: "socket", name: path, why: "vm " + v.Name + " has no vmm", remove: removeAll(path)})
			}
		}
	}
	return out
}

// leftoverImageDirs are image directories no image row has.
func (d *Daemon) leftoverImageDirs(ctx context.Context, entries []os.DirEntry) ([]leftover, error) {
	imgs, err := d.store.Images(ctx)
	if err != nil {
		return nil, err
	}
	owned := map[string]bool{}
	for _, img := range imgs {
		owned[filepath.Clean(img.Dir)] = true
	}
	var out []leftover
	for _, e := range entries {
		path := filepath.Join(d.cfg.Paths.ImagesDir(), e.Name())
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") && !owned[path] && !d.locks.busy(imageKey(imageNameOfDir(e.Name()))) {
			out = append(out, leftover{kind: "image directory", name: path, why: "no image has it", remove: removeAll(path)})
		}
	}
	return out, nil
}

func removeAll(path string) func(context.Context) error {
	return func(context.Context) error { return os.RemoveAll(path) }
}

// vmmAlive reports whether v's recorded VMM process still runs.
func (d *Daemon) vmmAlive(v *vm.VM) bool {
	return v.Process.PID != 0 && d.deps.VMM != nil && d.deps.VMM.Alive(v.Process)
}

// imageNameOfDir is the image name of an image directory "<name>-<id>".
func imageNameOfDir(dir string) string {
	if i := strings.LastIndexByte(dir, '-'); i > 0 {
		return dir[:i]
	}
	return dir
}

// orphanStage reports whether an entry of the images directory is the
// staging directory (images/.build-<id>, images/.commit-<id>,
// images/.<name>-<id>.bootstrap-*) of a build, commit or bootstrap that is
// not running, and what it was.
func (d *Daemon) orphanStage(entry string) (string, bool) {
	op, ok := strings.CutPrefix(entry, ".")
	if !ok {
		return "", false
	}
	if target, _, isBootstrap := strings.Cut(op, ".bootstrap-"); isBootstrap {
		if d.locks.busy(imageKey(imageNameOfDir(target))) {
			return "", false
		}
		return "an interrupted bootstrap of image " + imageNameOfDir(target), true
	}
	if !(strings.HasPrefix(op, "build-") || strings.HasPrefix(op, "commit-")) || d.locks.busy(buildKey(op)) {
		return "", false
	}
	return "an interrupted image " + strings.SplitN(op, "-", 2)[0], true
}

// sweep removes every leftover reconcile may remove.
func (d *Daemon) sweep(ctx context.Context) error {
	left, err := d.leftovers(ctx, false)
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range left {
		d.log.Info("removing leftover without owner", "kind", l.kind, "name", l.name, "why", l.why)
		if err := l.remove(ctx); err != nil {
			errs = append(errs, fmt.Errorf("removing %s %s: %w", l.kind, l.name, err))
		}
	}
	return errors.Join(errs...)
}
