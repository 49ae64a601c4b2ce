package qemuvmm

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"
)

// MetricsInterval is how often a configured metrics file gets a line.
const MetricsInterval = 60 * time.Second

// Handler returns the Firecracker-compatible API.
func (v *VMM) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", v.getInstance)
	mux.HandleFunc("GET /version", v.getVersion)
	mux.HandleFunc("GET /machine-config", v.getMachineConfig)
	mux.HandleFunc("PUT /machine-config", v.putMachineConfig)
	mux.HandleFunc("PATCH /machine-config", v.patchMachineConfig)
	mux.HandleFunc("PUT /boot-source", v.putBootSource)
	mux.HandleFunc("PUT /drives/{id}", v.putDrive)
	mux.HandleFunc("PATCH /drives/{id}", v.patchDriveHandler)
	mux.HandleFunc("PUT /network-interfaces/{id}", v.putNetworkInterface)
	mux.HandleFunc("PATCH /network-interfaces/{id}", v.patchNetworkInterface)
	mux.HandleFunc("PUT /logger", v.putLogger)
	mux.HandleFunc("PUT /metrics", v.putMetrics)
	mux.HandleFunc("PUT /vsock", v.putVsock)
	mux.HandleFunc("PUT /mmds", v.putMmds)
	mux.HandleFunc("PATCH /mmds", v.patchMmds)
	mux.HandleFunc("GET /mmds", v.getMmds)
	mux.HandleFunc("PUT /mmds/config", v.putMmdsConfig)
	mux.HandleFunc("PUT /actions", v.putActions)
	mux.HandleFunc("PATCH /vm", v.patchVM)
	mux.HandleFunc("GET /vm/config", v.getVMConfig)
	unsupported := func(what string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			v.fail(w, r, fault("%s are not supported by this VMM (banger-vmm-qemu).", what))
		}
	}
	mux.HandleFunc("PUT /snapshot/create", v.putSnapshotCreate)
	mux.HandleFunc("PUT /snapshot/load", v.putSnapshotLoad)
	mux.HandleFunc("/balloon", unsupported("Balloon devices"))
	mux.HandleFunc("/balloon/statistics", unsupported("Balloon devices"))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		v.fail(w, r, fault("Invalid request method and/or path: %s %s.", r.Method, r.URL.Path))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v.requests.Add(1)
		mux.ServeHTTP(w, r)
	})
}

func (v *VMM) reply(w http.ResponseWriter, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(body)
}

func noContent(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }

func (v *VMM) fail(w http.ResponseWriter, r *http.Request, err error) {
	msg := err.Error()
	var fe *faultError
	if !errors.As(err, &fe) {
		msg = "Internal error: " + msg
	}
	v.log().Warn("api request failed", "method", r.Method, "path", r.URL.Path, "fault", msg)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(Fault{FaultMessage: msg})
}

// decode parses the body into dst; on error it answers 400 and returns false.
func (v *VMM) decode(w http.ResponseWriter, r *http.Request, dst any) bool {
	if err := decodeBody(r.Body, dst); err != nil {
		v.fail(w, r, fault("%v", err))
		return false
	}
	return true
}

// preBoot locks v.mu and checks the VM has not started; on failure it
// answers and returns false with v.mu unlocked.
func (v *VMM) preBoot(w http.ResponseWriter, r *http.Request) bool {
	v.mu.Lock()
	if v.proc != nil {
		v.mu.Unlock()
		v.fail(w, r, errPostBoot)
		return false
	}
	if r.URL.Path != "/logger" && r.URL.Path != "/metrics" {
		v.configured = true
	}
	return true
}

func (v *VMM) getInstance(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	st := v.state
	v.mu.Unlock()
	v.reply(w, InstanceInfo{AppName: "Firecracker", ID: v.cfg.ID, State: st, VmmVersion: Version})
}

func (v *VMM) getVersion(w http.ResponseWriter, r *http.Request) {
	v.reply(w, VersionInfo{FirecrackerVersion: Version})
}

func (v *VMM) getMachineConfig(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	m := v.machine
	v.mu.Unlock()
	v.reply(w, m)
}

func (v *VMM) putMachineConfig(w http.ResponseWriter, r *http.Request) {
	var m MachineConfig
	if !v.decode(w, r, &m) {
		return
	}
	if err := m.validate(); err != nil {
		v.fail(w, r, fault("%v", err))
		return
	}
	if m.Smt == nil {
		m.Smt = ptr(false)
	}
	if !v.preBoot(w, r) {
		return
	}
	v.machine = m
	v.mu.Unlock()
	noContent(w)
}

func (v *VMM) patchMachineConfig(w http.ResponseWriter, r *http.Request) {
	var m MachineConfig
	if !v.decode(w, r, &m) {
		return
	}
	if !v.preBoot(w, r) {
		return
	}
	merged := v.machine.merge(m)
	if err := merged.validateValues(); err != nil {
		v.mu.Unlock()
		v.fail(w, r, fault("%v", err))
		return
	}
	v.machine = merged
	v.mu.Unlock()
	noContent(w)
}

func (v *VMM) putBootSource(w http.ResponseWriter, r *http.Request) {
	var b BootSource
	if !v.decode(w, r, &b) {
		return
	}
	if err := b.validate(); err != nil {
		v.fail(w, r, fault("%v", err))
		return
	}
	if !v.preBoot(w, r) {
		return
	}
	v.boot = &b
	v.mu.Unlock()
	noContent(w)
}

func (v *VMM) putDrive(w http.ResponseWriter, r *http.Request) {
	var d Drive
	if !v.decode(w, r, &d) {
		return
	}
	if err := d.validate(r.PathValue("id")); err != nil {
		v.fail(w, r, fault("%v", err))
		return
	}
	if !v.preBoot(w, r) {
		return
	}
	defer v.mu.Unlock()
	idx := -1
	for i, cur := range v.drives {
		if *cur.DriveID == *d.DriveID {
			idx = i
		} else if *d.IsRootDevice && *cur.IsRootDevice {
			v.fail(w, r, fault("A root block device already exists!"))
			return
		}
	}
	if idx >= 0 {
		v.drives[idx] = d
	} else {
		v.drives = append(v.drives, d)
	}
	noContent(w)
}

func (v *VMM) patchDriveHandler(w http.ResponseWriter, r *http.Request) {
	var p PartialDrive
	if !v.decode(w, r, &p) {
		return
	}
	if p.DriveID == nil {
		v.fail(w, r, fault("%v", missing("drive_id")))
		return
	}
	if err := checkIDs(r.PathValue("id"), *p.DriveID); err != nil {
		v.fail(w, r, fault("%v", err))
		return
	}
	if err := v.patchDrive(r.Context(), *p.DriveID, p); err != nil {
		v.fail(w, r, err)
		return
	}
	noContent(w)
}

func (v *VMM) putNetworkInterface(w http.ResponseWriter, r *http.Request) {
	var n NetworkInterface
	if !v.decode(w, r, &n) {
		return
	}
	if err := n.validate(r.PathValue("id")); err != nil {
		v.fail(w, r, fault("%v", err))
		return
	}
	if !v.preBoot(w, r) {
		return
	}
	defer v.mu.Unlock()
	idx := -1
	for i, cur := range v.nics {
		switch {
		case *cur.IfaceID == *n.IfaceID:
			idx = i
		case *cur.HostDevName == *n.HostDevName:
			v.fail(w, r, fault("The host device name %s is already in use by network interface %s.", *n.HostDevName, *cur.IfaceID))
			return
		case n.GuestMac != "" && cur.GuestMac == n.GuestMac:
			v.fail(w, r, fault("The guest MAC address %s is already in use by network interface %s.", n.GuestMac, *cur.IfaceID))
			return
		}
	}
	if idx >= 0 {
		v.nics[idx] = n
	} else {
		v.nics = append(v.nics, n)
	}
	noContent(w)
}

// patchNetworkInterface accepts a rate-limiter update after boot; the
// limits are stored but not enforced.
func (v *VMM) patchNetworkInterface(w http.ResponseWriter, r *http.Request) {
	var p struct {
		IfaceID       *string      `json:"iface_id"`
		RxRateLimiter *RateLimiter `json:"rx_rate_limiter,omitempty"`
		TxRateLimiter *RateLimiter `json:"tx_rate_limiter,omitempty"`
	}
	if !v.decode(w, r, &p) {
		return
	}
	if p.IfaceID == nil {
		v.fail(w, r, fault("%v", missing("iface_id")))
		return
	}
	if err := checkIDs(r.PathValue("id"), *p.IfaceID); err != nil {
		v.fail(w, r, fault("%v", err))
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.proc == nil {
		v.fail(w, r, errPreBoot)
		return
	}
	for i := range v.nics {
		if *v.nics[i].IfaceID == *p.IfaceID {
			if p.RxRateLimiter != nil {
				v.nics[i].RxRateLimiter = p.RxRateLimiter
			}
			if p.TxRateLimiter != nil {
				v.nics[i].TxRateLimiter = p.TxRateLimiter
			}
			noContent(w)
			return
		}
	}
	v.fail(w, r, fault("Unable to patch the network interface: %s does not exist.", *p.IfaceID))
}

func (v *VMM) putLogger(w http.ResponseWriter, r *http.Request) {
	var l Logger
	if !v.decode(w, r, &l) {
		return
	}
	if err := l.validate(); err != nil {
		v.fail(w, r, fault("%v", err))
		return
	}
	if !v.preBoot(w, r) {
		return
	}
	defer v.mu.Unlock()
	f, err := openSink(*l.LogPath)
	if err != nil {
		v.fail(w, r, fault("Cannot configure the logger: %v", err))
		return
	}
	level := slog.LevelInfo
	if l.Level != nil {
		level, _ = parseLevel(*l.Level)
	}
	showLevel := l.ShowLevel == nil || *l.ShowLevel
	showOrigin := l.ShowLogOrigin != nil && *l.ShowLogOrigin
	h := NewLogHandler(f, level, showLevel, showOrigin)
	v.logHandler.Store(&h)
	if v.logFile != nil {
		v.logFile.Close()
	}
	v.logFile, v.logger = f, &l
	noContent(w)
}

func (v *VMM) putMetrics(w http.ResponseWriter, r *http.Request) {
	var m Metrics
	if !v.decode(w, r, &m) {
		return
	}
	if m.MetricsPath == nil || *m.MetricsPath == "" {
		v.fail(w, r, fault("%v", missing("metrics_path")))
		return
	}
	if !v.preBoot(w, r) {
		return
	}
	defer v.mu.Unlock()
	f, err := openSink(*m.MetricsPath)
	if err != nil {
		v.fail(w, r, fault("Cannot configure the metrics: %v", err))
		return
	}
	if v.metFile != nil {
		v.metFile.Close()
	}
	v.metFile, v.metrics = f, &m
	go v.metricsLoop(f, MetricsInterval)
	noContent(w)
}

func (v *VMM) putVsock(w http.ResponseWriter, r *http.Request) {
	var vs Vsock
	if !v.decode(w, r, &vs) {
		return
	}
	if err := vs.validate(); err != nil {
		v.fail(w, r, fault("%v", err))
		return
	}
	if !v.preBoot(w, r) {
		return
	}
	v.vsock = &vs
	v.mu.Unlock()
	v.log().Warn("vsock configured but not provided to the guest by this VMM", "uds_path", *vs.UdsPath)
	noContent(w)
}

func (v *VMM) putMmds(w http.ResponseWriter, r *http.Request) {
	var data any
	if !v.decode(w, r, &data) {
		return
	}
	raw, _ := json.Marshal(data)
	v.mu.Lock()
	v.mmds = raw
	v.mu.Unlock()
	noContent(w)
}

func (v *VMM) patchMmds(w http.ResponseWriter, r *http.Request) {
	var patch any
	if !v.decode(w, r, &patch) {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	var cur any
	if v.mmds != nil {
		_ = json.Unmarshal(v.mmds, &cur)
	}
	v.mmds, _ = json.Marshal(mergePatch(cur, patch))
	noContent(w)
}

func (v *VMM) getMmds(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	data := v.mmds
	v.mu.Unlock()
	if data == nil {
		data = json.RawMessage("{}")
	}
	v.reply(w, data)
}

func (v *VMM) putMmdsConfig(w http.ResponseWriter, r *http.Request) {
	var c MmdsConfig
	if !v.decode(w, r, &c) {
		return
	}
	if !v.preBoot(w, r) {
		return
	}
	defer v.mu.Unlock()
	ifaces := map[string]bool{}
	for _, n := range v.nics {
		ifaces[*n.IfaceID] = true
	}
	if err := c.validate(ifaces); err != nil {
		v.fail(w, r, fault("%v", err))
		return
	}
	v.mmdsCfg = &c
	noContent(w)
}

func (v *VMM) putActions(w http.ResponseWriter, r *http.Request) {
	var a InstanceActionInfo
	if !v.decode(w, r, &a) {
		return
	}
	if a.ActionType == nil {
		v.fail(w, r, fault("%v", missing("action_type")))
		return
	}
	var err error
	switch *a.ActionType {
	case ActionInstanceStart:
		err = v.instanceStart(r.Context())
	case ActionSendCtrlAltDel:
		err = v.sendCtrlAltDel(r.Context())
	case ActionFlushMetrics:
		v.mu.Lock()
		if werr := v.writeMetricsLocked(); werr != nil {
			err = fault("Cannot flush metrics: %v", werr)
		}
		v.mu.Unlock()
	default:
		err = fault("unknown action_type %q (want InstanceStart, SendCtrlAltDel or FlushMetrics)", *a.ActionType)
	}
	if err != nil {
		v.fail(w, r, err)
		return
	}
	noContent(w)
}

func (v *VMM) patchVM(w http.ResponseWriter, r *http.Request) {
	var s VMState
	if !v.decode(w, r, &s) {
		return
	}
	if s.State == nil {
		v.fail(w, r, fault("%v", missing("state")))
		return
	}
	if err := v.setVMState(r.Context(), *s.State); err != nil {
		v.fail(w, r, err)
		return
	}
	noContent(w)
}

// fullConfig is the body of GET /vm/config.
type fullConfig struct {
	BootSource        *BootSource        `json:"boot-source,omitempty"`
	Drives            []Drive            `json:"drives"`
	MachineConfig     MachineConfig      `json:"machine-config"`
	NetworkInterfaces []NetworkInterface `json:"network-interfaces"`
	Logger            *Logger            `json:"logger,omitempty"`
	Metrics           *Metrics           `json:"metrics,omitempty"`
	MmdsConfig        *MmdsConfig        `json:"mmds-config,omitempty"`
	Vsock             *Vsock             `json:"vsock,omitempty"`
}

func (v *VMM) getVMConfig(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	c := fullConfig{
		BootSource: v.boot, Drives: append([]Drive{}, v.drives...), MachineConfig: v.machine,
		NetworkInterfaces: append([]NetworkInterface{}, v.nics...),
		Logger:            v.logger, Metrics: v.metrics, MmdsConfig: v.mmdsCfg, Vsock: v.vsock,
	}
	v.mu.Unlock()
	v.reply(w, c)
}

// mergePatch applies an RFC 7396 JSON merge patch, as PATCH /mmds does.
func mergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, pv := range p {
		if pv == nil {
			delete(t, k)
			continue
		}
		t[k] = mergePatch(t[k], pv)
	}
	return t
}
