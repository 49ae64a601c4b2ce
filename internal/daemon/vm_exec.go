package daemon

import (
	"context"
	"io"
	"net/http"
	"time"

	"banger/internal/api"
	"banger/internal/guest"
)

// handleExec runs one command in a VM's guest and streams its I/O:
// POST /v1/vms/{name}/exec with the request as JSON, then the connection
// switches to the frame protocol of api.ServeExec. Errors before the
// switch (no such VM, a stopped one, a guest that never answered) are
// ordinary JSON errors.
func (d *Daemon) handleExec(w http.ResponseWriter, r *http.Request) {
	if !api.IsExecUpgrade(r) {
		writeError(w, api.Errorf(api.CodeInvalid, "exec needs an upgrade to the %s stream", api.ExecUpgrade).
			WithHint("use `banger vm exec` or api.Client.Exec"))
		return
	}
	var req api.ExecRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	greq := guest.ExecRequest{Argv: req.Argv, Env: req.Env, Dir: req.Workdir, User: req.User, TTY: req.TTY, Term: req.Term,
		Size: guest.WindowSize{Rows: int(req.Size.Rows), Cols: int(req.Size.Cols)}}
	if _, err := greq.Line(); err != nil {
		writeError(w, api.Errorf(api.CodeInvalid, "%v", err))
		return
	}
	wait := time.Duration(req.WaitSeconds) * time.Second
	if wait <= 0 {
		wait = defaultGuestWait
	}
	v, err := d.waitGuest(r.Context(), r.PathValue("name"), wait)
	if err != nil {
		writeError(w, err)
		return
	}
	conn, rw, err := api.UpgradeExec(w, r)
	if err != nil {
		d.log.Warn("switching to the exec stream", "vm", v.Name, "err", err)
		return
	}
	start := func(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) (api.ExecProcess, error) {
		return d.deps.Guest.Exec(ctx, v, greq, stdin, stdout, stderr)
	}
	if err := api.ServeExec(r.Context(), conn, rw, start); err != nil {
		d.log.Debug("exec stream ended", "vm", v.Name, "err", err)
	}
}
