package firecracker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	sdk "github.com/firecracker-microvm/firecracker-go-sdk"
)

// snapshotTimeout bounds a snapshot create or load: the VMM writes or
// reads the guest memory.
const snapshotTimeout = 2 * time.Minute

// Snapshot names the two files of a VMM snapshot, as Firecracker's
// PUT /snapshot/create writes them and PUT /snapshot/load reads them.
type Snapshot struct {
	// StatePath holds the microVM (device) state.
	StatePath string
	// MemPath holds the guest memory.
	MemPath string
}

// machine returns an SDK machine bound to a running VMM's socket, for the
// SDK's post-boot calls.
func (d *Driver) machine(ctx context.Context, p Process) (*sdk.Machine, error) {
	logger := newSDKLogger(d.log, p.ID)
	m, err := sdk.NewMachine(ctx, sdk.Config{SocketPath: p.Socket, VMID: p.ID},
		sdk.WithClient(sdk.NewClient(p.Socket, logger, false)), sdk.WithLogger(logger))
	if err != nil {
		return nil, fmt.Errorf("preparing sdk machine for %s: %w", p.Socket, err)
	}
	return m, nil
}

// Pause stops the guest's vCPUs (PATCH /vm {"state":"Paused"}); its memory
// stays where it is.
func (d *Driver) Pause(ctx context.Context, p Process) error {
	return d.patchVM(ctx, p, "pausing", (*sdk.Machine).PauseVM)
}

// Resume lets a paused guest run again (PATCH /vm {"state":"Resumed"}).
func (d *Driver) Resume(ctx context.Context, p Process) error {
	return d.patchVM(ctx, p, "resuming", (*sdk.Machine).ResumeVM)
}

// pauseTimeout bounds PATCH /vm: a pause waits for the guest's disk
// requests in flight to finish (QEMU drains them, as Firecracker does),
// which on a loaded host took more than apiTimeout.
const pauseTimeout = 30 * time.Second

// patchVM runs one of the SDK's PATCH /vm calls against p's VMM.
func (d *Driver) patchVM(ctx context.Context, p Process, doing string, call func(*sdk.Machine, context.Context, ...sdk.PatchVMOpt) error) error {
	ctx, cancel := context.WithTimeout(ctx, pauseTimeout)
	defer cancel()
	m, err := d.machine(ctx, p)
	if err == nil {
		err = call(m, ctx)
	}
	if err != nil {
		return fmt.Errorf("%s vm %s: %w", doing, p.ID, err)
	}
	d.log.Info(doing+" vm done", "vm", p.ID, "pid", p.PID)
	return nil
}

// CreateSnapshot writes a full snapshot of a paused VM into s
// (PUT /snapshot/create). On error the files are removed.
func (d *Driver) CreateSnapshot(ctx context.Context, p Process, s Snapshot) error {
	ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	m, err := d.machine(ctx, p)
	if err == nil {
		err = m.CreateSnapshot(ctx, s.MemPath, s.StatePath)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("creating snapshot of vm %s in %s: %w", p.ID, s.StatePath, err), s.Remove())
	}
	d.log.Info("snapshot created", "vm", p.ID, "pid", p.PID, "path", s.StatePath, "mem_path", s.MemPath)
	return nil
}

// Remove deletes the snapshot's files; missing ones are not an error.
func (s Snapshot) Remove() error {
	var errs []error
	for _, p := range []string{s.StatePath, s.MemPath} {
		if p == "" {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing snapshot file: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Restore starts a new VMM for spec and loads the snapshot into it with
// the SDK's snapshot start (WithSnapshot: logger, then PUT /snapshot/load,
// with resume_vm when resume is set; the VM is Paused otherwise), instead
// of configuring and booting a machine. The
// snapshot must have been made of the same VM: its drives and TAP are the
// ones recorded in it. The files are left as they are. On error nothing
// is left running.
func (d *Driver) Restore(ctx context.Context, spec Spec, s Snapshot, resume bool) (Process, error) {
	cfg, p, err := d.launchForSnapshot(ctx, spec, s)
	if err != nil {
		return Process{}, err
	}
	if err := d.load(ctx, cfg, s, resume); err != nil {
		return Process{}, d.restoreFailed(ctx, spec, s, p, err)
	}
	d.log.Info("vm restored", "vm", spec.ID, "pid", p.PID, "socket", p.Socket, "snapshot", s.StatePath)
	return p, nil
}

// launchForSnapshot checks spec and the snapshot's files and starts a
// VMM for the load.
func (d *Driver) launchForSnapshot(ctx context.Context, spec Spec, s Snapshot) (sdk.Config, Process, error) {
	cfg, err := BuildConfig(spec)
	if err != nil {
		return cfg, Process{}, fmt.Errorf("restoring vm %s: %w", spec.ID, err)
	}
	for _, f := range []string{s.StatePath, s.MemPath} {
		if _, err := os.Stat(f); err != nil {
			return cfg, Process{}, fmt.Errorf("restoring vm %s: checking snapshot: %w", spec.ID, err)
		}
	}
	p, err := d.launch(ctx, spec, cfg)
	if err != nil {
		return cfg, Process{}, fmt.Errorf("restoring vm %s: %w", spec.ID, err)
	}
	return cfg, p, nil
}

// restoreFailed ends the VMM of a failed restore and names the logs.
func (d *Driver) restoreFailed(ctx context.Context, spec Spec, s Snapshot, p Process, err error) error {
	kerr := d.Kill(context.WithoutCancel(ctx), p)
	return errors.Join(
		fmt.Errorf("loading snapshot %s into vm %s: %w (see %s and %s)", s.StatePath, spec.ID, err, spec.VMMLogPath(), spec.ConsoleLogPath()),
		kerr)
}

// load runs the SDK's snapshot start sequence against the VMM on
// cfg.SocketPath, without the steps that start the process or set up CNI.
func (d *Driver) load(ctx context.Context, cfg sdk.Config, s Snapshot, resume bool) error {
	ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	logger := newSDKLogger(d.log, cfg.VMID)
	client := sdk.NewClient(cfg.SocketPath, logger, false)
	m, err := sdk.NewMachine(ctx, cfg, sdk.WithClient(client), sdk.WithLogger(logger),
		sdk.WithSnapshot(s.MemPath, s.StatePath, func(c *sdk.SnapshotConfig) { c.ResumeVM = resume }))
	if err != nil {
		return fmt.Errorf("preparing sdk machine: %w", err)
	}
	m.Handlers.Validation = sdk.HandlerList{}
	m.Handlers.FcInit = sdk.HandlerList{}.Append(
		sdk.CreateLogFilesHandler,
		sdk.BootstrapLoggingHandler,
		sdk.LoadSnapshotHandler,
	)
	return m.Start(ctx)
}

// RestoreAs starts a new VMM for the VM spec describes from a snapshot of
// another VM (a clone): PUT /snapshot/load with network_overrides puts the
// interface on spec.TAP (recent Firecracker releases and banger-vmm-qemu), the
// guest stays paused, and PATCH /drives moves each drive from the
// snapshot's files to spec's before the guest runs. The snapshot's own
// disks are opened by the load and released by the moves; they must not
// change meanwhile. On error nothing is left running.
func (d *Driver) RestoreAs(ctx context.Context, spec Spec, s Snapshot) (Process, error) {
	cfg, p, err := d.launchForSnapshot(ctx, spec, s)
	if err != nil {
		return Process{}, err
	}
	if err := d.loadAs(ctx, cfg, s, spec.TAP); err != nil {
		return Process{}, d.restoreFailed(ctx, spec, s, p, err)
	}
	for _, dr := range cfg.Drives {
		if dr.IsReadOnly != nil && *dr.IsReadOnly {
			continue // shared (the image's base), the same file for both
		}
		if err := d.UpdateDrive(ctx, p, *dr.DriveID, *dr.PathOnHost); err != nil {
			return Process{}, d.restoreFailed(ctx, spec, s, p, err)
		}
	}
	d.log.Info("vm restored from another vm's snapshot", "vm", spec.ID, "pid", p.PID, "socket", p.Socket, "snapshot", s.StatePath, "tap", spec.TAP)
	return p, nil
}

// loadAs runs the SDK's snapshot start with the load itself sent as
// Firecracker documents it today: firecracker-go-sdk v1.0.0's model of
// PUT /snapshot/load has no network_overrides.
func (d *Driver) loadAs(ctx context.Context, cfg sdk.Config, s Snapshot, tap string) error {
	ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	logger := newSDKLogger(d.log, cfg.VMID)
	client := sdk.NewClient(cfg.SocketPath, logger, false)
	// WithSnapshot makes Start skip InstanceStart; the SDK's own load
	// handler is replaced below.
	m, err := sdk.NewMachine(ctx, cfg, sdk.WithClient(client), sdk.WithLogger(logger), sdk.WithSnapshot(s.MemPath, s.StatePath))
	if err != nil {
		return fmt.Errorf("preparing sdk machine: %w", err)
	}
	body := loadParams{
		SnapshotPath: s.StatePath,
		MemBackend:   memBackend{BackendType: "File", BackendPath: s.MemPath},
	}
	if tap != "" {
		body.NetworkOverrides = []networkOverride{{IfaceID: NetworkInterfaceID, HostDevName: tap}}
	}
	m.Handlers.Validation = sdk.HandlerList{}
	m.Handlers.FcInit = sdk.HandlerList{}.Append(
		sdk.CreateLogFilesHandler,
		sdk.BootstrapLoggingHandler,
		sdk.Handler{Name: "banger.LoadSnapshotAs", Fn: func(ctx context.Context, _ *sdk.Machine) error {
			return putAPI(ctx, cfg.SocketPath, "/snapshot/load", body)
		}},
	)
	return m.Start(ctx)
}

// loadParams is the body of PUT /snapshot/load as recent Firecracker releases
// takes it.
type loadParams struct {
	SnapshotPath     string            `json:"snapshot_path"`
	MemBackend       memBackend        `json:"mem_backend"`
	ResumeVM         bool              `json:"resume_vm"`
	NetworkOverrides []networkOverride `json:"network_overrides,omitempty"`
}

type memBackend struct {
	BackendType string `json:"backend_type"`
	BackendPath string `json:"backend_path"`
}

type networkOverride struct {
	IfaceID     string `json:"iface_id"`
	HostDevName string `json:"host_dev_name"`
}

// putAPI sends one PUT with a JSON body to the VMM's API socket and turns
// a fault into an error with the VMM's fault_message.
func putAPI(ctx context.Context, socket, path string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", socket)
	}}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "http://localhost"+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("PUT %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return nil
	}
	var f struct {
		FaultMessage string `json:"fault_message"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(raw, &f) != nil || f.FaultMessage == "" {
		f.FaultMessage = strings.TrimSpace(string(raw))
	}
	return fmt.Errorf("PUT %s: %s: %s", path, resp.Status, f.FaultMessage)
}
