package daemon

import (
	"context"
	"errors"
	"net/http"
	"time"

	"banger/internal/api"
	"banger/internal/guest"
	"banger/internal/vm"
)

// defaultGuestWait bounds how long a command that needs the guest waits for
// a VM that is still booting.
const defaultGuestWait = 3 * time.Minute

func (d *Daemon) handleWaitVM(w http.ResponseWriter, r *http.Request) {
	var req api.WaitVMRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	timeout := time.Duration(req.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = defaultGuestWait
	}
	v, err := d.waitGuest(r.Context(), r.PathValue("name"), timeout)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d.toAPI(v))
}

// waitGuest returns when the VM's SSH server answers: at once for a booted
// guest, after the boot for one that is still starting (up to timeout). A
// VM that is not booting fails with the command that starts it.
func (d *Daemon) waitGuest(ctx context.Context, name string, timeout time.Duration) (*vm.VM, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		v, err := d.loadVM(ctx, name)
		if err != nil {
			return nil, err
		}
		switch v.State {
		case vm.Running:
			if d.deps.Guest == nil {
				return v, nil
			}
			var ready guest.Readiness
			err := d.whileVMMRuns(ctx, v, func(ctx context.Context) (err error) {
				ready, err = d.deps.Guest.WaitSSH(ctx, v)
				return err
			})
			if errors.Is(err, errVMMExited) {
				return nil, api.Errorf(api.CodeUnavailable, "%v", err).
					WithHint("read the logs, then `banger vm start %s` to boot it again", v.Name).
					WithLogs(v.ConsoleLog(), v.VMMLog())
			}
			if err != nil {
				return nil, d.waitFailed(ctx, v, "for its SSH server", timeout, err)
			}
			d.noteSSH(v, ready)
			return v, nil
		case vm.Creating, vm.Starting:
			select {
			case <-ctx.Done():
				return nil, d.waitFailed(ctx, v, "for it to boot", timeout, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		case vm.Paused:
			return nil, api.Errorf(api.CodeConflict, "vm %s is paused, so its guest cannot answer", v.Name).
				WithHint("resume it with `banger vm resume %s`", v.Name)
		default:
			return nil, api.Errorf(api.CodeConflict, "vm %s is %s, so its guest cannot be reached", v.Name, v.State).
				WithHint("start it with `banger vm start %s`", v.Name)
		}
	}
}

func (d *Daemon) waitFailed(ctx context.Context, v *vm.VM, what string, timeout time.Duration, err error) error {
	if ctx.Err() == context.Canceled {
		return api.Errorf(api.CodeInterrupted, "waiting for vm %s: %v", v.Name, err)
	}
	return api.Errorf(api.CodeUnavailable, "waited %s for vm %s %s: %v", timeout, v.Name, what, err).
		WithHint("the console log shows how far the guest booted: `banger vm logs %s`", v.Name).
		WithLogs(v.ConsoleLog(), d.cfg.Paths.DaemonLog())
}
