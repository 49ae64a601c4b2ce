package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"banger/internal/api"
	"banger/internal/guest"
	"banger/internal/image"
	"banger/internal/store"
	"banger/internal/vm"
)

// A warm template is a hidden VM of one (image, cpus, memory, disk),
// booted once and suspended: `vm create` of that shape clones it (a
// restore and a new identity, docs/snapshots.md) instead of booting.
// `banger image warm` makes it; an image rebuild leaves it stale (it
// records the image's id), `image prune` and `image rm` remove it.

// templatePrefix starts every template's name; templates are hidden, so
// a user's VM of that name is never taken for one.
const templatePrefix = "template-"

// templateName is the template VM of an image and shape.
func templateName(img *image.Image, cpus, memMiB int, disk int64) string {
	id := img.ID
	if len(id) > 10 {
		id = id[:10]
	}
	return templatePrefix + id + "-" + strconv.Itoa(cpus) + "x" + strconv.Itoa(memMiB) + "x" + strconv.FormatInt(disk>>20, 10)
}

// isTemplate reports whether v is a warm template.
func isTemplate(v *vm.VM) bool { return v.Hidden && strings.HasPrefix(v.Name, templatePrefix) }

// warmImage makes (or keeps) the template of an image and shape: a
// hidden VM created, booted to SSH and suspended. A template that exists
// and is current is kept; a stale or broken one is made again.
func (d *Daemon) warmImage(ctx context.Context, imageName string, req api.WarmImageRequest, progress func(api.Progress)) (*vm.VM, error) {
	create := api.CreateVMRequest{Name: "template", Image: imageName, CPUs: req.CPUs, MemoryMiB: req.MemoryMiB, DiskBytes: req.DiskBytes, WaitSSH: true, Hidden: true}
	if err := d.completeCreate(&create); err != nil {
		return nil, err
	}
	img, err := d.store.Image(ctx, create.Image)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFoundImage(create.Image)
	} else if err != nil {
		return nil, err
	}
	create.Name = templateName(&img, create.CPUs, create.MemoryMiB, create.DiskBytes)
	if t, err := d.store.VM(ctx, create.Name); err == nil {
		if isTemplate(&t) && t.State == vm.Suspended && t.ImageID == img.ID {
			return &t, nil
		}
		note(progress, "template", fmt.Sprintf("template %s is %s; making it again", t.Name, t.State))
		if err := d.removeVM(ctx, t.Name, true, progress); err != nil {
			return nil, err
		}
	}
	v, _, err := d.createVM(ctx, create, progress)
	if err == nil {
		d.settle(ctx, v, progress)
		v, err = d.suspendVM(ctx, create.Name, progress)
	}
	if err != nil {
		if rerr := d.removeVM(context.WithoutCancel(ctx), create.Name, true, nil); rerr != nil && !errors.Is(rerr, api.ErrNotFound) {
			err = errors.Join(err, rerr)
		}
		return nil, fmt.Errorf("warming image %s: %w", img.Name, err)
	}
	return v, nil
}

// settleTimeout bounds the wait for a template's boot to finish.
const settleTimeout = 2 * time.Minute

// settle waits, before a template is saved, until the guest's boot has
// finished (systemd's jobs are done) and its disks are synced, then ends
// the daemon's SSH connection and lets the guest's sshd see it go. Every
// VM restored from the template starts from that quiet state: saved just
// after SSH answered, each would redo the rest of the boot, at the cost
// of seconds under emulation, and hold an SSH session to nobody. A guest
// that does not settle is saved as it is, with a notice.
func (d *Daemon) settle(ctx context.Context, v *vm.VM, progress func(api.Progress)) {
	note(progress, "settle", "waiting for the guest's boot to finish")
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	// is-system-running exits non-zero for a degraded system, which is
	// settled too.
	req := guest.ExecRequest{Argv: []string{"sh", "-c", "systemctl is-system-running --wait >/dev/null 2>&1; sync"}}
	err := d.whileVMMRuns(ctx, v, func(ctx context.Context) error {
		return d.runInGuest(ctx, v, req, nil, io.Discard)
	})
	if err != nil {
		d.deps.Guest.Forget(v)
		d.log.Warn("template did not settle", "vm", v.Name, "err", err)
		note(progress, "settle", fmt.Sprintf("the guest did not settle (%v); saving it as it is", err))
		return
	}
	d.armAgent(ctx, v, progress)
	d.deps.Guest.Forget(v)
	// The guest's sshd ends the session of the connection just closed.
	select {
	case <-ctx.Done():
	case <-time.After(settleGrace):
	}
}

// armAgent leaves banger's identity agent waiting in a settled template
// (guest.ArmAgentRequest) and keeps its token beside the template's
// disks: every VM restored from the template is then given its identity
// without an SSH handshake. A template without an agent still serves:
// its clones are re-identified over SSH.
func (d *Daemon) armAgent(ctx context.Context, v *vm.VM, progress func(api.Progress)) {
	token, err := guest.NewAgentToken()
	if err == nil {
		err = d.whileVMMRuns(ctx, v, func(ctx context.Context) error {
			return d.runInGuest(ctx, v, guest.ArmAgentRequest(v.IP), strings.NewReader(token+"\n"), io.Discard)
		})
	}
	if err == nil {
		err = os.WriteFile(agentTokenPath(v), []byte(token+"\n"), 0o600)
	}
	if err != nil {
		d.log.Warn("arming the identity agent of a template", "vm", v.Name, "err", err)
		note(progress, "settle", fmt.Sprintf("no identity agent in the template (%v); its clones are re-identified over SSH", err))
	}
}

// agentTokenPath holds the token of the identity agent armed in template
// v, which only the daemon may read.
func agentTokenPath(v *vm.VM) string { return filepath.Join(v.Dir, "identity-agent.token") }

// agentToken returns the token of the agent armed in v, or "" when v is
// not a template with one.
func agentToken(v *vm.VM) string {
	if !isTemplate(v) {
		return ""
	}
	b, err := os.ReadFile(agentTokenPath(v))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// settleGrace is how long a settled template runs on after the daemon's
// SSH connection ended.
const settleGrace = 300 * time.Millisecond

// fromTemplate makes the VM req asks for by cloning a warm template of
// its image and shape, when there is a current one. It reports whether it
// did; a template that cannot be used is reported in a notice and the
// caller boots the VM cold.
func (d *Daemon) fromTemplate(ctx context.Context, req api.CreateVMRequest, progress func(api.Progress)) (*vm.VM, bool, error) {
	if req.NoStart || req.RootBytes != 0 || req.Hidden {
		return nil, false, nil
	}
	img, err := d.store.Image(ctx, req.Image)
	if err != nil {
		return nil, false, nil // the cold path reports it
	}
	name := templateName(&img, req.CPUs, req.MemoryMiB, req.DiskBytes)
	t, err := d.store.VM(ctx, name)
	if err != nil || !isTemplate(&t) {
		return nil, false, nil
	}
	if t.State != vm.Suspended || t.ImageID != img.ID {
		note(progress, "template", fmt.Sprintf("template %s is %s, not usable; booting cold (`banger image warm %s` makes it again)", t.Name, t.State, img.Name))
		return nil, false, nil
	}
	if _, err := d.store.VM(ctx, req.Name); err == nil {
		return nil, false, nil // the cold path says the name is taken
	}
	note(progress, "template", "restoring from warm template "+t.Name)
	v, err := d.cloneVM(ctx, t.Name, req.Name, progress)
	if err == nil {
		return v, true, nil
	}
	if ctx.Err() != nil {
		return nil, true, err // the user gave up: a cold boot would not do better
	}
	d.log.Warn("warm template not usable", "template", t.Name, "err", err)
	note(progress, "template", fmt.Sprintf("template %s could not be used (%v); booting cold", t.Name, err))
	return nil, false, nil
}

// note sends a progress line when someone listens.
func note(progress func(api.Progress), step, msg string) {
	if progress != nil {
		progress(api.Progress{Step: step, Message: msg})
	}
}

// staleTemplates are the templates whose image is gone or was rebuilt,
// or that are not suspended (a warm cut off).
func staleTemplates(imgs []image.Image, vms []vm.VM) []vm.VM {
	current := map[string]bool{}
	for _, img := range imgs {
		current[img.ID] = true
	}
	var out []vm.VM
	for _, v := range vms {
		if isTemplate(&v) && (!current[v.ImageID] || v.State != vm.Suspended) {
			out = append(out, v)
		}
	}
	return out
}
