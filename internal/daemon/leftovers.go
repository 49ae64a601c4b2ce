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

// leftovers lists what banger made on the host and no row owns. The host
// is listed before the database is read, so a create, which records its
// VM before it makes anything, is never mistaken for a leftover. Image
// directories without a row are listed only when images is set: they are
// reported and removed on request, never by reconcile alone.
func (d *Daemon) leftovers(ctx context.Context, images bool) ([]leftover, error) {
	p := d.cfg.Paths
	var taps []string
	if d.deps.Network != nil {
		var err error
		if taps, err = d.deps.Network.TAPs(ctx); err != nil {
			return nil, fmt.Errorf("listing taps: %w", err)
		}
	}
	vmParents := []string{filepath.Join(p.DataDir, "vms"), filepath.Join(p.StateDir, "vms"), filepath.Join(p.RuntimeDir, "vms")}
	entries := map[string][]os.DirEntry{}
	for _, dir := range append(vmParents, p.ImagesDir()) {
		entries[dir], _ = os.ReadDir(dir)
	}
	var serving map[string]vm.Process
	if d.deps.VMM != nil {
		serving = d.deps.VMM.Serving()
	}
	temps, _ := disk.TempsBefore(p.DiskTemplates(), d.deps.Now().Add(-time.Minute))

	vms, err := d.store.VMs(ctx)
	if err != nil {
		return nil, err
	}
	byID := map[string]*vm.VM{}
	ownedTAPs := map[string]bool{}
	for i := range vms {
		v := &vms[i]
		byID[v.ID] = v
		// Only a running VM (or one an operation is working on) holds its
		// TAP; a stopped VM's TAP is a leftover.
		if v.TAP != "" && (v.State == vm.Running || v.State == vm.Stopping || d.locks.busy(vmKey(v.Name))) {
			ownedTAPs[v.TAP] = true
		}
	}
	var out []leftover
	for _, t := range taps {
		if !ownedTAPs[t] {
			out = append(out, leftover{kind: "tap", name: t, remove: func(ctx context.Context) error { return d.deps.Network.DeleteTAP(ctx, t) }})
		}
	}
	// A VMM serving a socket of banger's whose VM has no row. (One whose
	// VM has a row but that the row does not record is stopped by the
	// VM's reconcile: stopUnrecorded.)
	for sock, proc := range serving {
		if filepath.Dir(sock) != vmParents[2] {
			continue
		}
		id, _, _ := strings.Cut(filepath.Base(sock), ".")
		if byID[id] != nil {
			continue
		}
		orphan := &vm.VM{ID: id, Name: id, Socket: sock, Process: proc}
		out = append(out, leftover{kind: "vmm process", name: strconv.Itoa(proc.PID), why: sock, remove: func(ctx context.Context) error { return d.deps.VMM.Kill(ctx, orphan) }})
	}
	for _, parent := range vmParents {
		for _, e := range entries[parent] {
			// "<id>", "<id>.sock", and the VMM's helpers such as "<id>.sock.qmp".
			id, _, _ := strings.Cut(e.Name(), ".")
			v := byID[id]
			path := filepath.Join(parent, e.Name())
			switch {
			case v == nil:
				out = append(out, leftover{kind: "vm file", name: path, why: "no vm has id " + id, remove: removeAll(path)})
			case parent == vmParents[2] && !d.locks.busy(vmKey(v.Name)) && !d.vmmAlive(v):
				// A VM without a VMM has no sockets: any left are a
				// VMM's killed while it still made them (QEMU's monitor
				// socket appears after the VMM's own).
				out = append(out, leftover{kind: "socket", name: path, why: "vm " + v.Name + " has no vmm", remove: removeAll(path)})
			}
		}
	}
	for _, e := range entries[p.ImagesDir()] {
		path := filepath.Join(p.ImagesDir(), e.Name())
		if why, ok := d.orphanStage(e.Name()); ok {
			out = append(out, leftover{kind: "image stage", name: path, why: why, remove: removeAll(path)})
		}
	}
	if images {
		imgs, err := d.store.Images(ctx)
		if err != nil {
			return nil, err
		}
		owned := map[string]bool{}
		for _, img := range imgs {
			owned[filepath.Clean(img.Dir)] = true
		}
		for _, e := range entries[p.ImagesDir()] {
			path := filepath.Join(p.ImagesDir(), e.Name())
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".") && !owned[path] && !d.locks.busy(imageKey(imageNameOfDir(e.Name()))) {
				out = append(out, leftover{kind: "image directory", name: path, why: "no image has it", remove: removeAll(path)})
			}
		}
	}
	for _, t := range temps {
		out = append(out, leftover{kind: "disk template temp", name: t, why: "an unfinished blank disk", remove: removeAll(t)})
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
