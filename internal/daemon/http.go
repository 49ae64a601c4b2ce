package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"

	"banger/internal/api"
	"banger/internal/store"
)

type peerKey struct{}

// peerContext records the peer's credentials (SO_PEERCRED) of each unix
// socket connection.
func peerContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	uid := -1
	_ = raw.Control(func(fd uintptr) { uid = peerUID(fd) })
	return context.WithValue(ctx, peerKey{}, uid)
}

// ownerOnly refuses every request whose peer is neither the daemon's user
// nor root.
func ownerOnly(next http.Handler) http.Handler {
	me := os.Getuid()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uid, ok := r.Context().Value(peerKey{}).(int)
		if ok && uid != me && uid != 0 {
			writeError(w, api.Errorf(api.CodeForbidden, "uid %d may not use this bangerd: it serves only uid %d and root", uid, me).
				WithHint("run banger as the user who owns the daemon; each user has their own bangerd"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Handler is the daemon's HTTP API.
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", d.handleStatus)
	mux.HandleFunc("GET /v1/doctor", d.handleDoctor)
	mux.HandleFunc("GET /v1/system/check", d.handleCheck)
	mux.HandleFunc("POST /v1/system/check", d.handleFix)
	mux.HandleFunc("POST /v1/dns/setup", d.handleDNSSetup)
	mux.HandleFunc("POST /v1/shutdown", d.handleShutdown)
	mux.HandleFunc("GET /v1/events", d.handleEvents)
	mux.HandleFunc("GET /v1/vms", d.handleListVMs)
	mux.HandleFunc("POST /v1/vms", d.handleCreateVM)
	mux.HandleFunc("GET /v1/vms/{name}", d.handleShowVM)
	mux.HandleFunc("POST /v1/vms/{name}/start", d.handleStartVM)
	mux.HandleFunc("POST /v1/vms/{name}/stop", d.handleStopVM)
	mux.HandleFunc("POST /v1/vms/{name}/kill", d.handleKillVM)
	mux.HandleFunc("POST /v1/vms/{name}/restart", d.handleRestartVM)
	mux.HandleFunc("POST /v1/vms/{name}/pause", d.handleVMOp(d.pauseVM))
	mux.HandleFunc("POST /v1/vms/{name}/resume", d.handleVMOp(d.resumeVM))
	mux.HandleFunc("POST /v1/vms/{name}/suspend", d.handleVMOp(d.suspendVM))
	mux.HandleFunc("POST /v1/vms/{name}/clone", d.handleCloneVM)
	mux.HandleFunc("POST /v1/vms/{name}/resize", d.handleResizeVM)
	mux.HandleFunc("POST /v1/vms/{name}/remove", d.handleRemoveVM)
	mux.HandleFunc("POST /v1/vms/{name}/wait", d.handleWaitVM)
	mux.HandleFunc("POST /v1/vms/{name}/exec", d.handleExec)
	mux.HandleFunc("POST /v1/vms/{name}/forwards", d.handleForwards)
	mux.HandleFunc("GET /v1/vms/{name}/logs", d.handleVMLogs)
	mux.HandleFunc("GET /v1/images", d.handleListImages)
	mux.HandleFunc("POST /v1/images/bootstrap", d.handleBootstrapImage)
	mux.HandleFunc("POST /v1/images/build", d.handleBuildImage)
	mux.HandleFunc("POST /v1/images/commit", d.handleCommitImage)
	mux.HandleFunc("POST /v1/images/prune", d.handlePruneImages)
	mux.HandleFunc("GET /v1/images/{name}", d.handleShowImage)
	mux.HandleFunc("DELETE /v1/images/{name}", d.handleRemoveImage)
	mux.HandleFunc("POST /v1/images/{name}/warm", d.handleWarmImage)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, api.Errorf(api.CodeNotFound, "no route %s %s", r.Method, r.URL.Path).
			WithHint("the CLI and daemon may be different versions: `banger daemon restart`"))
	})
	return ownerOnly(mux)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// toAPIError maps internal errors to the API's error shape.
func toAPIError(err error) *api.Error {
	var ae *api.Error
	var se *StepError
	switch {
	case errors.As(err, &se):
		return se.APIError()
	case errors.As(err, &ae):
		return api.AsError(err)
	case diskFull(err):
		return &api.Error{Code: api.CodeUnavailable, Message: err.Error(), Hint: diskFullHint}
	case errors.Is(err, store.ErrNotFound):
		return &api.Error{Code: api.CodeNotFound, Message: err.Error()}
	case errors.Is(err, store.ErrExists):
		return &api.Error{Code: api.CodeConflict, Message: err.Error()}
	case errors.Is(err, store.ErrInUse):
		return &api.Error{Code: api.CodeConflict, Message: err.Error()}
	case errors.Is(err, store.ErrBusy):
		return &api.Error{Code: api.CodeUnavailable, Message: err.Error()}
	case errors.Is(err, context.Canceled):
		return &api.Error{Code: api.CodeInterrupted, Message: err.Error()}
	}
	return &api.Error{Code: api.CodeInternal, Message: err.Error(), Hint: "see the daemon log: `banger daemon logs`"}
}

func writeError(w http.ResponseWriter, err error) {
	e := toAPIError(err)
	writeJSON(w, api.HTTPStatus(e.Code), api.ErrorBody{Error: e})
}

// progressWriter streams NDJSON lines of a long operation.
type progressWriter struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	flusher http.Flusher
	started bool
}

func newProgressWriter(w http.ResponseWriter) *progressWriter {
	f, _ := w.(http.Flusher)
	return &progressWriter{w: w, flusher: f}
}

func (p *progressWriter) line(v api.StreamLine) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.started {
		p.w.Header().Set("Content-Type", "application/x-ndjson")
		p.w.WriteHeader(http.StatusOK)
		p.started = true
	}
	b, _ := json.Marshal(v)
	_, _ = p.w.Write(append(b, '\n'))
	if p.flusher != nil {
		p.flusher.Flush()
	}
}

// Progress sends one progress line.
func (p *progressWriter) Progress(pr api.Progress) { p.line(api.StreamLine{Progress: &pr}) }

// finish sends the final line. Errors before any progress are plain error
// responses with their status code, so simple clients see them too.
func (p *progressWriter) finish(result api.StreamLine, err error) {
	if err != nil {
		p.mu.Lock()
		started := p.started
		p.mu.Unlock()
		if !started {
			writeError(p.w, err)
			return
		}
		p.line(api.StreamLine{Error: toAPIError(err)})
		return
	}
	result.Done = true
	p.line(result)
}

func decodeBody(r *http.Request, v any) error {
	if r.Body == nil || r.ContentLength == 0 {
		return nil
	}
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return api.Errorf(api.CodeInvalid, "decoding request body: %v", err)
	}
	return nil
}

func notFoundVM(name string) error {
	return api.Errorf(api.CodeNotFound, "no vm named %q", name).WithHint("`banger vm list` shows the VMs")
}

func notFoundImage(name string) error {
	return api.Errorf(api.CodeNotFound, "no image named %q", name).
		WithHint("`banger image list` shows the images; `banger image bootstrap %s` builds one from Debian packages", name)
}
