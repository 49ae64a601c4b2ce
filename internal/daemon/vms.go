package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"banger/internal/api"
	"banger/internal/preflight"
	"banger/internal/vm"
)

// toAPI renders a VM for clients, with live stats of its VMM and its
// forwards.
func (d *Daemon) toAPI(v *vm.VM) *api.VM {
	out := d.render(v)
	ctx := context.Background()
	if fw, err := d.forwardStrings(ctx, v.ID); err == nil {
		out.Forwards = fw[v.ID]
	}
	if img, err := d.store.Image(ctx, v.ImageName); err == nil {
		out.StaleImage = d.imageStale(&img)
	}
	out.Boot = d.bootTimeline(v)
	return out
}

// staleImages says, by image id, which images are stale, for listings.
func (d *Daemon) staleImages(ctx context.Context) map[string]bool {
	imgs, err := d.store.Images(ctx)
	if err != nil {
		return nil
	}
	out := map[string]bool{}
	for i := range imgs {
		out[imgs[i].ID] = d.imageStale(&imgs[i])
	}
	return out
}

// render renders a VM without its forwards.
func (d *Daemon) render(v *vm.VM) *api.VM {
	out := &api.VM{
		ID: v.ID, Name: v.Name, State: string(v.State), Reason: v.Reason, Image: v.ImageName,
		CPUs: v.CPUs, MemoryMiB: v.MemoryMiB, DiskBytes: v.DiskBytes, IP: addrString(v.IP), MAC: v.MAC, TAP: v.TAP,
		DNSName: d.dnsName(v), PID: v.Process.PID, RootDisk: v.WritableRoot(), WorkDisk: v.WorkDisk(), Layout: string(v.LayoutOrClone()),
		ConsoleLog: v.ConsoleLog(), VMMLog: v.VMMLog(), Hidden: v.Hidden, CreatedAt: v.CreatedAt, StartedAt: v.StartedAt,
	}
	if v.HoldsVMM() && v.Process.PID > 0 {
		out.CPUPercent, out.RSSBytes = d.stats(v.Process.PID)
	}
	if v.State == vm.Suspended {
		out.SavedBytes, out.SavedMemory = suspendBytes(v), v.SuspendMemory()
	}
	out.RootUsed = allocated(out.RootDisk)
	out.WorkUsed = allocated(out.WorkDisk)
	return out
}

func (d *Daemon) handleListVMs(w http.ResponseWriter, r *http.Request) {
	vms, err := d.store.VMs(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	fw, err := d.forwardStrings(r.Context(), "")
	if err != nil {
		writeError(w, err)
		return
	}
	stale := d.staleImages(r.Context())
	all := r.URL.Query().Get("all") != ""
	out := make([]*api.VM, 0, len(vms))
	for i := range vms {
		if vms[i].Hidden && !all {
			continue
		}
		v := d.render(&vms[i])
		v.Forwards = fw[v.ID]
		v.StaleImage = stale[vms[i].ImageID]
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, out)
}

func (d *Daemon) handleShowVM(w http.ResponseWriter, r *http.Request) {
	v, err := d.loadVM(r.Context(), r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d.toAPI(v))
}

// streamOp runs a VM operation, streaming its progress and ending with the
// VM's new state.
func (d *Daemon) streamOp(w http.ResponseWriter, fn func(progress func(api.Progress)) (*vm.VM, []string, error)) {
	pw := newProgressWriter(w)
	v, warnings, err := fn(pw.Progress)
	if err != nil {
		pw.finish(api.StreamLine{}, err)
		return
	}
	line := api.StreamLine{Warnings: warnings}
	if v != nil {
		line.VM = d.toAPI(v)
	}
	pw.finish(line, nil)
}

func (d *Daemon) handleCreateVM(w http.ResponseWriter, r *http.Request) {
	var req api.CreateVMRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	d.streamOp(w, func(progress func(api.Progress)) (*vm.VM, []string, error) {
		return d.createVM(r.Context(), req, progress)
	})
}

func (d *Daemon) handleStartVM(w http.ResponseWriter, r *http.Request) {
	wait := r.URL.Query().Get("wait_ssh") != ""
	d.streamOp(w, func(progress func(api.Progress)) (*vm.VM, []string, error) {
		v, err := d.startVM(r.Context(), r.PathValue("name"), wait, progress)
		return v, nil, err
	})
}

func (d *Daemon) handleWarmImage(w http.ResponseWriter, r *http.Request) {
	var req api.WarmImageRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	d.streamOp(w, func(progress func(api.Progress)) (*vm.VM, []string, error) {
		v, err := d.warmImage(r.Context(), r.PathValue("name"), req, progress)
		return v, nil, err
	})
}

func (d *Daemon) handleCloneVM(w http.ResponseWriter, r *http.Request) {
	var req api.CloneVMRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	d.streamOp(w, func(progress func(api.Progress)) (*vm.VM, []string, error) {
		v, err := d.cloneVM(r.Context(), r.PathValue("name"), req.Name, progress)
		return v, nil, err
	})
}

func (d *Daemon) handleStopVM(w http.ResponseWriter, r *http.Request) {
	var req api.StopVMRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	d.streamOp(w, func(progress func(api.Progress)) (*vm.VM, []string, error) {
		v, err := d.stopVM(r.Context(), r.PathValue("name"), false, time.Duration(req.TimeoutSeconds)*time.Second, progress)
		return v, nil, err
	})
}

func (d *Daemon) handleKillVM(w http.ResponseWriter, r *http.Request) {
	d.streamOp(w, func(progress func(api.Progress)) (*vm.VM, []string, error) {
		v, err := d.stopVM(r.Context(), r.PathValue("name"), true, 0, progress)
		return v, nil, err
	})
}

// handleVMOp serves an operation on one VM that takes no request body.
func (d *Daemon) handleVMOp(op func(ctx context.Context, name string, progress func(api.Progress)) (*vm.VM, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d.streamOp(w, func(progress func(api.Progress)) (*vm.VM, []string, error) {
			v, err := op(r.Context(), r.PathValue("name"), progress)
			return v, nil, err
		})
	}
}

func (d *Daemon) handleRestartVM(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	wait := r.URL.Query().Get("wait_ssh") != ""
	d.streamOp(w, func(progress func(api.Progress)) (*vm.VM, []string, error) {
		v, err := d.restartVM(r.Context(), name, wait, progress)
		return v, nil, err
	})
}

func (d *Daemon) handleResizeVM(w http.ResponseWriter, r *http.Request) {
	var req api.ResizeVMRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	d.streamOp(w, func(progress func(api.Progress)) (*vm.VM, []string, error) {
		v, err := d.resizeVM(r.Context(), r.PathValue("name"), req, progress)
		return v, nil, err
	})
}

func (d *Daemon) handleRemoveVM(w http.ResponseWriter, r *http.Request) {
	var req api.RemoveVMRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	d.streamOp(w, func(progress func(api.Progress)) (*vm.VM, []string, error) {
		if req.Force {
			return nil, nil, d.forceRemoveVM(r.Context(), r.PathValue("name"), progress)
		}
		return nil, nil, d.removeVM(r.Context(), r.PathValue("name"), false, progress)
	})
}

func (d *Daemon) handleVMLogs(w http.ResponseWriter, r *http.Request) {
	v, err := d.loadVM(r.Context(), r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	path := v.ConsoleLog()
	switch r.URL.Query().Get("source") {
	case "", "console":
	case "vmm":
		path = v.VMMLog()
	default:
		writeError(w, api.Errorf(api.CodeInvalid, "unknown log source %q: use console or vmm", r.URL.Query().Get("source")))
		return
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		writeError(w, api.Errorf(api.CodeNotFound, "vm %s has no log at %s yet", v.Name, path).WithHint("it appears when the vm first boots"))
		return
	} else if err != nil {
		writeError(w, err)
		return
	}
	defer f.Close()
	if n, err := strconv.Atoi(r.URL.Query().Get("tail")); err == nil && n > 0 {
		if err := seekTail(f, n); err != nil {
			writeError(w, err)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	follow := r.URL.Query().Get("follow") != ""
	flusher, _ := w.(http.Flusher)
	for {
		if _, err := io.Copy(w, f); err != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
		if !follow {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (d *Daemon) handleStatus(w http.ResponseWriter, r *http.Request) {
	st, err := d.Status(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// Status describes this daemon.
func (d *Daemon) Status(ctx context.Context) (api.Status, error) {
	counts, err := d.store.CountVMs(ctx)
	if err != nil {
		return api.Status{}, err
	}
	imgs, err := d.store.Images(ctx)
	if err != nil {
		return api.Status{}, err
	}
	st := api.Status{
		PID: os.Getpid(), Version: d.cfg.Version, BuildID: d.cfg.BuildID, Executable: d.cfg.Executable, Service: d.cfg.Service,
		Socket: d.cfg.Paths.Socket(), Database: d.store.Path(), LogFile: d.cfg.Paths.DaemonLog(), LogLevel: d.cfg.LogLevel,
		StartedAt: d.started.UTC(), UptimeSeconds: time.Since(d.started).Seconds(), VMs: counts, Images: len(imgs),
		Listeners: []api.Listener{}, Ready: true,
	}
	if d.deps.Network != nil {
		st.Allocation = d.deps.Network.Allocation()
	}
	st.Runtime = d.deps.Runtime.Describe()
	if d.deps.DNS != nil {
		st.Listeners = append(st.Listeners, d.deps.DNS.Listeners()...)
		st.DNSRecords = d.deps.DNS.Count()
	}
	if missing := d.missingLayers(preflight.StartVM); len(missing) > 0 {
		st.Problems = append(st.Problems, "cannot run VMs: built without host layers ("+strings.Join(missing, ", ")+")")
	}
	return st, nil
}

func (d *Daemon) handleShutdown(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "shutting down"})
	go d.requestShutdown()
}

// seekTail positions f at the start of its last n lines, reading at most
// the last 1 MiB, so that following a large console log starts cheaply.
func seekTail(f *os.File, n int) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	start := st.Size() - 1<<20
	if start < 0 {
		start = 0
	}
	buf := make([]byte, st.Size()-start)
	if _, err := f.ReadAt(buf, start); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading log tail: %w", err)
	}
	end := len(buf)
	if end > 0 && buf[end-1] == '\n' {
		end--
	}
	cut := 0
	for i := end - 1; i >= 0; i-- {
		if buf[i] == '\n' {
			n--
			if n == 0 {
				cut = i + 1
				break
			}
		}
	}
	_, err = f.Seek(start+int64(cut), io.SeekStart)
	return err
}

// addrString renders an address for clients, the zero address as "".
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// dnsName is the name the host resolves v by: NAME.vm, or NAME.USER.vm for
// a user's daemon.
func (d *Daemon) dnsName(v *vm.VM) string {
	zone := "vm."
	if d.deps.DNS != nil {
		zone = d.deps.DNS.Zone()
	}
	return v.Name + "." + strings.TrimSuffix(zone, ".")
}
