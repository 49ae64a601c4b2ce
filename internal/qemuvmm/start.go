package qemuvmm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"banger/internal/system"
)

// faultError is an API error with Firecracker's wording; it becomes a 400
// with {"fault_message": …}.
type faultError struct{ msg string }

func (e *faultError) Error() string { return e.msg }

func fault(format string, args ...any) error { return &faultError{msg: fmt.Sprintf(format, args...)} }

var (
	errPostBoot = &faultError{"The requested operation is not supported after starting the microVM."}
	errPreBoot  = &faultError{"The requested operation is not supported before starting the microVM."}
)

// launchConfigLocked resolves the API state into a LaunchConfig. v.mu is held.
func (v *VMM) launchConfigLocked(accel Accel) (LaunchConfig, error) {
	if v.boot == nil {
		return LaunchConfig{}, fault("Cannot start microvm without a kernel: configure /boot-source first.")
	}
	c := LaunchConfig{
		QEMU:      v.cfg.QEMU,
		Name:      v.cfg.ID,
		Accel:     accel,
		VCPUs:     *v.machine.VcpuCount,
		MemMiB:    *v.machine.MemSizeMib,
		Kernel:    *v.boot.KernelImagePath,
		Initrd:    v.boot.InitrdPath,
		QMPSocket: v.cfg.APISock + ".qmp",
	}
	if c.QEMU == "" {
		c.QEMU = "qemu-system-x86_64"
	}
	if len(c.QMPSocket) > 107 {
		return c, fault("The API socket path %s is too long for the QMP socket beside it (%s.qmp); use a shorter --api-sock.", v.cfg.APISock, v.cfg.APISock)
	}
	for _, p := range []string{c.Kernel, c.Initrd} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return c, fault("Cannot start microvm: the boot source file is not usable: %v", err)
		}
	}
	var root *Drive
	ordered := make([]Drive, 0, len(v.drives))
	for _, d := range v.drives {
		if *d.IsRootDevice {
			root = &d
			ordered = append([]Drive{d}, ordered...)
		} else {
			ordered = append(ordered, d)
		}
	}
	for i, d := range ordered {
		if _, err := os.Stat(*d.PathOnHost); err != nil {
			return c, fault("Cannot start microvm: drive %s is not usable: %v", *d.DriveID, err)
		}
		cache := "unsafe"
		if d.CacheType != nil && *d.CacheType == "Writeback" {
			cache = "writeback"
		}
		node := "drive" + strconv.Itoa(i)
		v.nodes[*d.DriveID] = node
		c.Drives = append(c.Drives, LaunchDrive{Node: node, Path: *d.PathOnHost, ReadOnly: *d.IsReadOnly, Cache: cache})
	}
	for i, n := range v.nics {
		c.NICs = append(c.NICs, LaunchNIC{Netdev: "net" + strconv.Itoa(i), Tap: *n.HostDevName, MAC: n.GuestMac})
	}
	c.Cmdline = KernelCmdline(v.boot.BootArgs, root, accel)
	return c, nil
}

// instanceStart launches QEMU. It answers once QEMU's QMP socket is up, or
// after StartWait if QEMU is still starting (the SDK allows 500 ms per
// call); QEMU failing inside that window fails the call with its stderr.
func (v *VMM) instanceStart(ctx context.Context) error {
	select {
	case <-v.accelDone:
	case <-ctx.Done():
		return fault("Cannot start microvm: %v", ctx.Err())
	}
	if v.accelErr != nil {
		return fault("Cannot start microvm: %v", v.accelErr)
	}
	v.mu.Lock()
	if v.state != StateNotStarted || v.proc != nil {
		v.mu.Unlock()
		return errPostBoot
	}
	lc, err := v.launchConfigLocked(v.accel)
	if err != nil {
		v.mu.Unlock()
		return err
	}
	ram, err := newRAM(lc.MemMiB)
	if err != nil {
		v.mu.Unlock()
		return fault("Cannot start microvm: %v", err)
	}
	proc, err := v.startQEMULocked(lc, ram, StateRunning)
	v.mu.Unlock()
	if err != nil {
		return err
	}
	return v.waitStarted(proc)
}

// startQEMULocked launches QEMU for lc with guest RAM in the memfd ram
// (handed over as descriptor 3) and records it in state. v.mu is held. On
// error ram is closed.
func (v *VMM) startQEMULocked(lc LaunchConfig, ram *os.File, state string) (Proc, error) {
	_ = os.Remove(lc.QMPSocket)
	lc.RAMPath = "/proc/self/fd/3"
	argv := BuildArgv(lc)
	v.stderr.setNext(stderrLogger{log: v.log(), extra: v.cfg.QEMUStderr})
	proc, err := v.deps.Start(system.ProcessSpec{
		Argv:          argv,
		Stdin:         v.cfg.ConsoleIn,
		Stdout:        v.cfg.Console,
		Stderr:        v.stderr,
		NewSession:    true,
		DieWithParent: true,
		ExtraFiles:    []*os.File{ram},
	})
	if err != nil {
		ram.Close()
		if system.IsNotFound(err) {
			return nil, fault("Cannot start microvm: %s not found; install it with `apt-get install qemu-system-x86` or pass --qemu", lc.QEMU)
		}
		return nil, fault("Cannot start microvm: %v", err)
	}
	v.proc, v.ram, v.launch = proc, ram, lc
	v.state = state
	v.log().Info("qemu started", "pid", proc.PID(), "accel", lc.Accel.Kind, "argv", strings.Join(argv, " "))
	go v.watch(proc, lc.QMPSocket)
	return proc, nil
}

// waitStarted answers InstanceStart once QMP is up, after StartWait, or
// with QEMU's stderr when it exits first.
func (v *VMM) waitStarted(proc Proc) error {
	timer := time.NewTimer(v.cfg.StartWait)
	defer timer.Stop()
	select {
	case <-v.qmpReady:
		return nil
	case <-proc.Done():
		st, _ := proc.Wait()
		return fault("Cannot start microvm: qemu exited (%s): %s", st, strings.TrimSpace(v.stderr.String()))
	case <-timer.C:
		return nil
	}
}

// watch connects QMP, relays its events to the log, and closes v.exited
// when QEMU ends.
func (v *VMM) watch(proc Proc, qmpPath string) {
	defer func() {
		_ = os.Remove(qmpPath)
		close(v.exited)
	}()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-proc.Done()
		cancel()
	}()
	qmp, err := v.deps.DialQMP(ctx, qmpPath)
	if err != nil {
		if ctx.Err() == nil {
			v.log().Error("connecting to qemu", "err", err)
			_ = proc.Signal(syscall.SIGKILL)
		}
		<-proc.Done()
		return
	}
	v.mu.Lock()
	v.qmp = qmp
	v.mu.Unlock()
	close(v.qmpReady)
	events := qmp.Events()
	for {
		var ev QMPEvent
		var ok bool
		select {
		case ev, ok = <-events:
		case <-proc.Done():
		}
		if !ok {
			break
		}
		v.log().Info("qemu event", "event", ev.Event, "data", string(ev.Data))
		v.mu.Lock()
		switch ev.Event {
		case "STOP":
			if v.state == StateRunning {
				v.state = StatePaused
			}
		case "RESUME":
			v.state = StateRunning
		}
		v.mu.Unlock()
	}
	<-proc.Done()
}

// controller waits briefly for the QMP connection of a started VM.
func (v *VMM) controller(ctx context.Context) (Controller, error) {
	v.mu.Lock()
	started := v.proc != nil
	v.mu.Unlock()
	if !started {
		return nil, errPreBoot
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	select {
	case <-v.qmpReady:
		v.mu.Lock()
		defer v.mu.Unlock()
		return v.qmp, nil
	case <-v.exited:
		return nil, fault("The microVM has stopped.")
	case <-ctx.Done():
		return nil, fault("QEMU's control socket is not ready yet; retry.")
	}
}

func (v *VMM) qmpCommand(ctx context.Context, command string, args any) error {
	c, err := v.controller(ctx)
	if err != nil {
		return err
	}
	if _, err := c.Execute(ctx, command, args); err != nil {
		return fault("%v", err)
	}
	return nil
}

// sendCtrlAltDel asks the guest to power off through an ACPI power-button
// event; QEMU exits when it has (-no-reboot also turns a reboot into exit).
func (v *VMM) sendCtrlAltDel(ctx context.Context) error {
	return v.qmpCommand(ctx, "system_powerdown", nil)
}

func (v *VMM) setVMState(ctx context.Context, want string) error {
	switch want {
	case "Paused":
		if err := v.qmpCommand(ctx, "stop", nil); err != nil {
			return err
		}
		v.mu.Lock()
		v.state = StatePaused
		v.mu.Unlock()
	case "Resumed":
		if err := v.qmpCommand(ctx, "cont", nil); err != nil {
			return err
		}
		v.mu.Lock()
		v.state = StateRunning
		v.mu.Unlock()
		// Announce the NICs' MACs (RARP), as QEMU does after a migration:
		// while this guest was paused a clone restored from it may have
		// used its MAC, and the host's bridge would go on sending this
		// guest's frames to the clone's TAP until it learns otherwise.
		if err := v.qmpCommand(ctx, "announce-self", map[string]any{"initial": 50, "max": 550, "rounds": 5, "step": 100}); err != nil {
			v.log().Warn("announcing the guest's MACs after a resume", "err", err)
		}
	default:
		return fault("unknown state %q (want Paused or Resumed)", want)
	}
	return nil
}

// patchDrive passes a changed drive on to the guest. With the same path,
// the file's size is re-read and given to block_resize, so the guest sees
// the new capacity; with another path, the drive moves to that file
// (swapDrive), as Firecracker re-opens path_on_host.
func (v *VMM) patchDrive(ctx context.Context, id string, p PartialDrive) error {
	v.mu.Lock()
	if v.proc == nil {
		v.mu.Unlock()
		return errPreBoot
	}
	var cur *Drive
	for i := range v.drives {
		if *v.drives[i].DriveID == id {
			cur = &v.drives[i]
		}
	}
	if cur == nil {
		v.mu.Unlock()
		return fault("Unable to patch the block device: drive %s does not exist.", id)
	}
	path, node, drive := *cur.PathOnHost, v.nodes[id], *cur
	if p.RateLimiter != nil {
		cur.RateLimiter = p.RateLimiter
	}
	v.mu.Unlock()
	if p.PathOnHost == "" {
		return nil
	}
	st, err := os.Stat(p.PathOnHost)
	if err != nil {
		return fault("Unable to patch the block device: %v", err)
	}
	if !st.Mode().IsRegular() {
		return fault("Unable to patch the block device: %s is not a regular file.", p.PathOnHost)
	}
	if p.PathOnHost != path {
		if err := v.swapDrive(ctx, drive, node, p.PathOnHost); err != nil {
			return err
		}
	} else if *drive.IsReadOnly {
		// QEMU refuses to resize a read-only image; its file is not
		// expected to change under the guest.
		return nil
	}
	return v.qmpCommand(ctx, "block_resize", map[string]any{"device": node, "size": st.Size()})
}

// swapDrive moves a drive of the running or paused VM to another backing
// file. QEMU opens the file as a node of its own and a mirror job with
// sync=none pivots the guest's device onto it: nothing is copied, the new
// file is taken as it is (a clone's copy of the disk it was restored
// with). Writes the guest makes during the swap reach both files.
func (v *VMM) swapDrive(ctx context.Context, d Drive, node, path string) error {
	c, err := v.controller(ctx)
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.swaps++
	target := node + "-" + strconv.Itoa(v.swaps)
	v.mu.Unlock()
	cache := map[string]any{"direct": false, "no-flush": d.CacheType == nil || *d.CacheType != "Writeback"}
	if _, err := c.Execute(ctx, "blockdev-add", map[string]any{
		"driver": "raw", "node-name": target, "read-only": *d.IsReadOnly, "cache": cache,
		"file": map[string]any{"driver": "file", "filename": path, "locking": "off", "cache": cache},
	}); err != nil {
		return fault("Unable to patch the block device: opening %s: %v", path, err)
	}
	job := "swap-" + target
	if _, err := c.Execute(ctx, "blockdev-mirror", map[string]any{
		"job-id": job, "device": node, "target": target, "sync": "none",
	}); err != nil {
		_, _ = c.Execute(context.WithoutCancel(ctx), "blockdev-del", map[string]any{"node-name": target})
		return fault("Unable to patch the block device: moving drive %s to %s: %v", *d.DriveID, path, err)
	}
	if err := waitJob(ctx, c, job, true); err != nil {
		_, _ = c.Execute(context.WithoutCancel(ctx), "job-cancel", map[string]any{"id": job})
		return fault("Unable to patch the block device: moving drive %s to %s: %v", *d.DriveID, path, err)
	}
	if _, err := c.Execute(ctx, "job-complete", map[string]any{"id": job}); err != nil {
		return fault("Unable to patch the block device: moving drive %s to %s: %v", *d.DriveID, path, err)
	}
	if err := waitJob(ctx, c, job, false); err != nil {
		return fault("Unable to patch the block device: moving drive %s to %s: %v", *d.DriveID, path, err)
	}
	v.mu.Lock()
	for i := range v.drives {
		if *v.drives[i].DriveID == *d.DriveID {
			v.drives[i].PathOnHost = ptr(path)
		}
	}
	v.mu.Unlock()
	v.log().Info("drive moved to another file", "drive_id", *d.DriveID, "from", *d.PathOnHost, "to", path)
	return nil
}

// waitJob polls query-block-jobs until the job is ready (ready) or gone
// (!ready, it completed). A job that stopped with an error fails the wait.
func waitJob(ctx context.Context, c Controller, id string, ready bool) error {
	for {
		raw, err := c.Execute(ctx, "query-block-jobs", nil)
		if err != nil {
			return err
		}
		var jobs []struct {
			Device string `json:"device"`
			Ready  bool   `json:"ready"`
			Status string `json:"status"`
			Error  string `json:"error"`
		}
		if err := json.Unmarshal(raw, &jobs); err != nil {
			return fmt.Errorf("reading query-block-jobs: %w", err)
		}
		found := false
		for _, j := range jobs {
			if j.Device != id {
				continue
			}
			found = true
			switch {
			case j.Error != "":
				return fmt.Errorf("qemu job %s: %s", id, j.Error)
			case ready && j.Ready:
				return nil
			}
		}
		if !found {
			if ready {
				return fmt.Errorf("qemu job %s ended before it was ready", id)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for qemu job %s: %w", id, ctx.Err())
		case <-time.After(migrationPoll):
		}
	}
}

// stderrLogger turns QEMU's stderr into log lines.
type stderrLogger struct {
	log   *slog.Logger
	extra interface{ Write([]byte) (int, error) }
}

func (s stderrLogger) Write(p []byte) (int, error) {
	for _, line := range system.Lines(p) {
		s.log.Warn("qemu: " + line)
	}
	if s.extra != nil {
		_, _ = s.extra.Write(p)
	}
	return len(p), nil
}

// metricsLine is one JSON line of the metrics file.
type metricsLine struct {
	UTCTimestampMs int64 `json:"utc_timestamp_ms"`
	VMM            struct {
		UptimeMs int64  `json:"uptime_ms"`
		State    string `json:"state"`
		QEMUPID  int    `json:"qemu_pid,omitempty"`
	} `json:"vmm"`
	APIServer struct {
		Requests uint64 `json:"requests"`
	} `json:"api_server"`
}

// writeMetricsLocked appends one metrics line; v.mu is held.
func (v *VMM) writeMetricsLocked() error {
	if v.metFile == nil {
		return errors.New("metrics are not configured")
	}
	now := v.deps.Now()
	var m metricsLine
	m.UTCTimestampMs = now.UnixMilli()
	m.VMM.UptimeMs = now.Sub(v.started).Milliseconds()
	m.VMM.State = v.state
	if v.proc != nil {
		m.VMM.QEMUPID = v.proc.PID()
	}
	m.APIServer.Requests = v.requests.Load()
	data, _ := json.Marshal(m)
	if _, err := v.metFile.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("writing metrics: %w", err)
	}
	return nil
}

// metricsLoop flushes metrics every interval, as Firecracker does every 60 s.
func (v *VMM) metricsLoop(f *os.File, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-v.exited:
			return
		case <-t.C:
		}
		v.mu.Lock()
		if v.metFile != f {
			v.mu.Unlock()
			return
		}
		_ = v.writeMetricsLocked()
		v.mu.Unlock()
	}
}

// openSink opens a log or metrics path the way Firecracker does: it may be
// a named pipe, so it is opened read-write and non-blocking.
func openSink(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	return f, nil
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "error":
		return slog.LevelError, nil
	case "warning", "warn":
		return slog.LevelWarn, nil
	case "info":
		return slog.LevelInfo, nil
	case "debug", "trace":
		return slog.LevelDebug, nil
	case "off":
		return slog.LevelError + 100, nil
	}
	return 0, fmt.Errorf("unknown log level %q (want Error, Warning, Info or Debug)", s)
}

// NewLogHandler returns the text handler banger-vmm-qemu logs with.
func NewLogHandler(w interface{ Write([]byte) (int, error) }, level slog.Level, showLevel, showOrigin bool) slog.Handler {
	return slog.NewTextHandler(w, &slog.HandlerOptions{
		Level:     level,
		AddSource: showOrigin,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if !showLevel && len(groups) == 0 && a.Key == slog.LevelKey {
				return slog.Attr{}
			}
			return a
		},
	})
}
