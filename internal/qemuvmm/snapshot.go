package qemuvmm

import (
	"bufio"
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
)

// Snapshots follow Firecracker's API (docs/snapshotting/snapshot-support.md):
// PUT /snapshot/create on a paused VM writes the device state to
// snapshot_path and the guest memory to mem_file_path; PUT /snapshot/load on
// a fresh VMM restores both. Under QEMU, guest RAM is a memfd this process
// holds and QEMU maps shared, so migration with x-ignore-shared saves only
// the device state (about 100 KiB) and the memory is a sparse copy of the
// memfd. A load copies the memory file into a new memfd (the file itself is
// never written, as with Firecracker's private mapping) and feeds the state
// to a QEMU started with -incoming defer.

// SnapshotCreateParams is the body of PUT /snapshot/create.
type SnapshotCreateParams struct {
	MemFilePath  *string `json:"mem_file_path"`
	SnapshotPath *string `json:"snapshot_path"`
	SnapshotType string  `json:"snapshot_type,omitempty"`
	Version      string  `json:"version,omitempty"`
}

// MemoryBackend is the mem_backend of PUT /snapshot/load.
type MemoryBackend struct {
	BackendType *string `json:"backend_type"`
	BackendPath *string `json:"backend_path"`
}

// NetworkOverride replaces the host device of one interface on load.
type NetworkOverride struct {
	IfaceID     *string `json:"iface_id"`
	HostDevName *string `json:"host_dev_name"`
}

// SnapshotLoadParams is the body of PUT /snapshot/load. Exactly one of
// mem_file_path (the form firecracker-go-sdk v1.0.0 sends) and mem_backend
// is given.
type SnapshotLoadParams struct {
	SnapshotPath        *string           `json:"snapshot_path"`
	MemFilePath         *string           `json:"mem_file_path,omitempty"`
	MemBackend          *MemoryBackend    `json:"mem_backend,omitempty"`
	EnableDiffSnapshots bool              `json:"enable_diff_snapshots,omitempty"`
	ResumeVM            bool              `json:"resume_vm,omitempty"`
	NetworkOverrides    []NetworkOverride `json:"network_overrides,omitempty"`
}

// snapshotMagic starts every snapshot file this VMM writes; the JSON
// header follows on the next line, then QEMU's migration stream.
const snapshotMagic = "banger-vmm-qemu snapshot 1\n"

// snapshotHeader is what a load needs besides QEMU's stream: the machine
// as configured, and the exact QEMU configuration the stream belongs to.
type snapshotHeader struct {
	Machine MachineConfig      `json:"machine"`
	Boot    *BootSource        `json:"boot"`
	Drives  []Drive            `json:"drives"`
	NICs    []NetworkInterface `json:"nics"`
	Launch  LaunchConfig       `json:"launch"`
	Created time.Time          `json:"created"`
}

// migrationPoll is the step of the wait for a migration to finish.
const migrationPoll = 2 * time.Millisecond

func (v *VMM) putSnapshotCreate(w http.ResponseWriter, r *http.Request) {
	var p SnapshotCreateParams
	if !v.decode(w, r, &p) {
		return
	}
	switch {
	case p.SnapshotPath == nil || *p.SnapshotPath == "":
		v.fail(w, r, fault("%v", missing("snapshot_path")))
		return
	case p.MemFilePath == nil || *p.MemFilePath == "":
		v.fail(w, r, fault("%v", missing("mem_file_path")))
		return
	}
	switch p.SnapshotType {
	case "", "Full":
	case "Diff":
		v.fail(w, r, fault("Diff snapshots are not supported by this VMM (banger-vmm-qemu); create a Full snapshot."))
		return
	default:
		v.fail(w, r, fault("unknown variant `%s`, expected `Full` or `Diff`", p.SnapshotType))
		return
	}
	if err := v.createSnapshot(r.Context(), *p.SnapshotPath, *p.MemFilePath); err != nil {
		v.fail(w, r, err)
		return
	}
	noContent(w)
}

func (v *VMM) putSnapshotLoad(w http.ResponseWriter, r *http.Request) {
	var p SnapshotLoadParams
	if !v.decode(w, r, &p) {
		return
	}
	mem, err := p.memFile()
	if err != nil {
		v.fail(w, r, err)
		return
	}
	if err := v.loadSnapshot(r.Context(), p, mem); err != nil {
		v.fail(w, r, err)
		return
	}
	noContent(w)
}

// memFile returns the memory file of a load request.
func (p SnapshotLoadParams) memFile() (string, error) {
	switch {
	case p.SnapshotPath == nil || *p.SnapshotPath == "":
		return "", fault("%v", missing("snapshot_path"))
	case p.MemFilePath != nil && p.MemBackend != nil:
		return "", fault("Only one of mem_file_path and mem_backend may be given.")
	case p.MemFilePath != nil:
		return *p.MemFilePath, nil
	case p.MemBackend == nil:
		return "", fault("Exactly one of mem_file_path and mem_backend must be given.")
	case p.MemBackend.BackendType == nil || p.MemBackend.BackendPath == nil:
		return "", fault("%v", missing("backend_type` and `backend_path"))
	case *p.MemBackend.BackendType == "Uffd":
		return "", fault("The Uffd memory backend is not supported by this VMM (banger-vmm-qemu); use File.")
	case *p.MemBackend.BackendType != "File":
		return "", fault("unknown variant `%s`, expected `File` or `Uffd`", *p.MemBackend.BackendType)
	}
	return *p.MemBackend.BackendPath, nil
}

// createSnapshot saves a paused VM: device state through QEMU migration
// into snapshotPath (after the header), guest RAM copied from the memfd
// into memPath. Both files are removed again when anything fails.
func (v *VMM) createSnapshot(ctx context.Context, snapshotPath, memPath string) (err error) {
	v.mu.Lock()
	switch {
	case v.proc == nil:
		v.mu.Unlock()
		return errPreBoot
	case v.state != StatePaused:
		v.mu.Unlock()
		return fault("Cannot create a snapshot: the microVM is %s; pause it first (PATCH /vm {\"state\":\"Paused\"}).", strings.ToLower(v.state))
	case v.ram == nil:
		v.mu.Unlock()
		return fault("Cannot create a snapshot: this microVM's memory is not held by the VMM.")
	}
	hdr := snapshotHeader{
		Machine: v.machine, Boot: v.boot, Drives: append([]Drive{}, v.drives...),
		NICs: append([]NetworkInterface{}, v.nics...), Launch: v.launch, Created: v.deps.Now().UTC(),
	}
	ram := v.ram
	v.mu.Unlock()
	hdr.Launch.RAMPath, hdr.Launch.QMPSocket, hdr.Launch.Incoming = "", "", false

	start := v.deps.Now()
	defer func() {
		if err != nil {
			_ = os.Remove(snapshotPath)
			_ = os.Remove(memPath)
		}
	}()
	state, err := os.OpenFile(snapshotPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fault("Cannot create a snapshot: %v", err)
	}
	defer state.Close()
	head, _ := json.Marshal(hdr)
	if _, err := state.WriteString(snapshotMagic + string(head) + "\n"); err != nil {
		return fault("Cannot create a snapshot: writing %s: %v", snapshotPath, err)
	}
	mem, err := os.OpenFile(memPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fault("Cannot create a snapshot: %v", err)
	}
	defer mem.Close()
	// The paused guest's memory does not change: copy it while QEMU
	// writes the device state.
	var n int64
	copied := make(chan error, 1)
	go func() {
		var err error
		n, err = copySparse(mem, ram)
		copied <- err
	}()
	migErr := v.migrateOut(ctx, state)
	if err := <-copied; err != nil {
		return fault("Cannot create a snapshot: writing guest memory to %s: %v", memPath, err)
	}
	if migErr != nil {
		return migErr
	}
	if err := state.Close(); err != nil {
		return fault("Cannot create a snapshot: writing %s: %v", snapshotPath, err)
	}
	if err := mem.Close(); err != nil {
		return fault("Cannot create a snapshot: writing %s: %v", memPath, err)
	}
	v.log().Info("snapshot created", "snapshot_path", snapshotPath, "mem_file_path", memPath,
		"mem_bytes_written", n, "duration_ms", v.deps.Now().Sub(start).Milliseconds())
	return nil
}

// migrateOut runs QEMU's outgoing migration (device state only, RAM being
// shared) into w, through a unix socket beside the API socket.
func (v *VMM) migrateOut(ctx context.Context, w io.Writer) error {
	c, err := v.controller(ctx)
	if err != nil {
		return err
	}
	sock := v.cfg.APISock + ".mig"
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fault("Cannot create a snapshot: listening for qemu's state on %s: %v", sock, err)
	}
	defer os.Remove(sock)
	defer ln.Close()
	copied := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			copied <- err
			return
		}
		defer conn.Close()
		_, err = io.Copy(w, conn)
		copied <- err
	}()
	if err := ignoreShared(ctx, c); err != nil {
		return fault("Cannot create a snapshot: %v", err)
	}
	if _, err := c.Execute(ctx, "migrate", map[string]any{"uri": "unix:" + sock}); err != nil {
		return fault("Cannot create a snapshot: %v", err)
	}
	if err := waitMigration(ctx, c); err != nil {
		_ = ln.Close()
		return fault("Cannot create a snapshot: %v", err)
	}
	select {
	case err := <-copied:
		if err != nil {
			return fault("Cannot create a snapshot: receiving qemu's state: %v", err)
		}
	case <-ctx.Done():
		return fault("Cannot create a snapshot: %v", ctx.Err())
	}
	return nil
}

// ignoreShared turns on the migration capability that leaves shared RAM
// out of the stream.
func ignoreShared(ctx context.Context, c Controller) error {
	_, err := c.Execute(ctx, "migrate-set-capabilities", map[string]any{
		"capabilities": []map[string]any{{"capability": "x-ignore-shared", "state": true}},
	})
	return err
}

// waitMigration polls query-migrate until the migration completed or failed.
func waitMigration(ctx context.Context, c Controller) error {
	for {
		raw, err := c.Execute(ctx, "query-migrate", nil)
		if err != nil {
			return err
		}
		var st struct {
			Status    string `json:"status"`
			ErrorDesc string `json:"error-desc"`
		}
		_ = json.Unmarshal(raw, &st)
		switch st.Status {
		case "completed":
			return nil
		case "failed", "cancelled":
			return fmt.Errorf("qemu migration %s: %s", st.Status, st.ErrorDesc)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for qemu's migration: %w", ctx.Err())
		case <-time.After(migrationPoll):
		}
	}
}

// loadSnapshot restores a snapshot into this fresh VMM: it reads the
// header, fills a new memfd from the memory file, starts QEMU waiting for
// the state and streams it in. The VM is Paused afterwards, or Running
// with resume_vm.
func (v *VMM) loadSnapshot(ctx context.Context, p SnapshotLoadParams, memPath string) error {
	select {
	case <-v.accelDone:
	case <-ctx.Done():
		return fault("Cannot load the snapshot: %v", ctx.Err())
	}
	v.mu.Lock()
	if v.proc != nil || v.state != StateNotStarted {
		v.mu.Unlock()
		return fault("Loading a microVM snapshot not allowed after starting the microVM.")
	}
	if v.configured {
		v.mu.Unlock()
		return fault("Loading a microVM snapshot not allowed after configuring boot-specific resources.")
	}
	v.mu.Unlock()

	f, err := os.Open(*p.SnapshotPath)
	if err != nil {
		return fault("Cannot load the snapshot: %v", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	hdr, err := readSnapshotHeader(br)
	if err != nil {
		return fault("Cannot load the snapshot %s: %v", *p.SnapshotPath, err)
	}
	if err := applyOverrides(&hdr, p.NetworkOverrides); err != nil {
		return err
	}
	mem, err := os.Open(memPath)
	if err != nil {
		return fault("Cannot load the snapshot: %v", err)
	}
	defer mem.Close()
	if st, err := mem.Stat(); err != nil || st.Size() != *hdr.Machine.MemSizeMib<<20 {
		return fault("Cannot load the snapshot: memory file %s does not hold the snapshot's %d MiB of guest memory.", memPath, *hdr.Machine.MemSizeMib)
	}
	start := v.deps.Now()
	ram, err := newRAM(*hdr.Machine.MemSizeMib)
	if err != nil {
		return fault("Cannot load the snapshot: %v", err)
	}
	// The memory is copied while QEMU starts (with -S it runs nothing).
	// It must be complete before the device state goes in: loading virtio
	// devices reads their ring indices from guest RAM.
	copied := make(chan error, 1)
	go func() {
		_, err := copySparse(ram, mem)
		copied <- err
	}()
	copyErr := func() error {
		if err := <-copied; err != nil {
			return fmt.Errorf("reading guest memory from %s: %w", memPath, err)
		}
		return nil
	}

	v.mu.Lock()
	if v.proc != nil || v.configured {
		v.mu.Unlock()
		_ = copyErr()
		ram.Close()
		return fault("Loading a microVM snapshot not allowed after configuring boot-specific resources.")
	}
	v.machine, v.boot, v.drives, v.nics = hdr.Machine, hdr.Boot, hdr.Drives, hdr.NICs
	lc, err := v.launchConfigLocked(hdr.Launch.Accel)
	if err != nil {
		v.machine, v.boot, v.drives, v.nics = MachineConfig{VcpuCount: ptr(int64(1)), MemSizeMib: ptr(int64(128)), Smt: ptr(false)}, nil, nil, nil
		v.mu.Unlock()
		_ = copyErr()
		ram.Close()
		return fault("Cannot load the snapshot: %v", strings.TrimPrefix(err.Error(), "Cannot start microvm: "))
	}
	lc.Cmdline = hdr.Launch.Cmdline
	lc.Incoming = true
	proc, err := v.startQEMULocked(lc, ram, StatePaused)
	v.mu.Unlock()
	if err != nil {
		_ = copyErr() // startQEMULocked closed ram
		return err
	}
	waited := false
	fail := func(err error) error {
		_ = proc.Signal(os.Kill)
		<-proc.Done()
		if !waited {
			_ = copyErr()
		}
		return fault("Cannot load the snapshot: %v%s", err, v.qemuSaid())
	}
	c, err := v.controller(ctx)
	if err != nil {
		return fail(err)
	}
	waited = true
	if err := copyErr(); err != nil {
		return fail(err)
	}
	if err := v.migrateIn(ctx, c, br); err != nil {
		return fail(err)
	}
	if p.ResumeVM {
		if _, err := c.Execute(ctx, "cont", nil); err != nil {
			return fail(err)
		}
		v.mu.Lock()
		v.state = StateRunning
		v.mu.Unlock()
	}
	v.log().Info("snapshot loaded", "snapshot_path", *p.SnapshotPath, "mem_file_path", memPath,
		"resumed", p.ResumeVM, "duration_ms", v.deps.Now().Sub(start).Milliseconds())
	return nil
}

// qemuSaid returns QEMU's last stderr as a suffix for an error, if any.
func (v *VMM) qemuSaid() string {
	if s := strings.TrimSpace(v.stderr.String()); s != "" {
		return "; qemu: " + s
	}
	return ""
}

// migrateIn asks QEMU to listen for the incoming state beside the API
// socket, streams r into it and waits until QEMU has loaded it.
func (v *VMM) migrateIn(ctx context.Context, c Controller, r io.Reader) error {
	sock := v.cfg.APISock + ".mig"
	_ = os.Remove(sock)
	defer os.Remove(sock)
	if err := ignoreShared(ctx, c); err != nil {
		return err
	}
	if _, err := c.Execute(ctx, "migrate-incoming", map[string]any{"uri": "unix:" + sock}); err != nil {
		return err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return fmt.Errorf("sending the state to qemu: %w", err)
	}
	_, err = io.Copy(conn, r)
	conn.Close()
	if err != nil {
		return fmt.Errorf("sending the state to qemu: %w", err)
	}
	return waitMigration(ctx, c)
}

// readSnapshotHeader checks the magic line and decodes the header.
func readSnapshotHeader(r *bufio.Reader) (snapshotHeader, error) {
	var hdr snapshotHeader
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != snapshotMagic {
		return hdr, errors.New("not a snapshot made by banger-vmm-qemu (a Firecracker snapshot cannot be loaded by this VMM)")
	}
	line, err := r.ReadBytes('\n')
	if err != nil {
		return hdr, fmt.Errorf("reading the snapshot header: %w", err)
	}
	if err := json.Unmarshal(line, &hdr); err != nil {
		return hdr, fmt.Errorf("reading the snapshot header: %w", err)
	}
	if hdr.Machine.MemSizeMib == nil || hdr.Machine.VcpuCount == nil || hdr.Boot == nil || hdr.Boot.KernelImagePath == nil {
		return hdr, errors.New("the snapshot header lacks the machine configuration")
	}
	return hdr, nil
}

// applyOverrides points interfaces at other host devices, as
// network_overrides does in Firecracker.
func applyOverrides(hdr *snapshotHeader, overrides []NetworkOverride) error {
	for _, o := range overrides {
		if o.IfaceID == nil || o.HostDevName == nil {
			return fault("%v", missing("iface_id` and `host_dev_name"))
		}
		found := false
		for i := range hdr.NICs {
			if *hdr.NICs[i].IfaceID == *o.IfaceID {
				hdr.NICs[i].HostDevName = ptr(*o.HostDevName)
				found = true
			}
		}
		if !found {
			return fault("Cannot load the snapshot: network_overrides names interface %s, which the snapshot does not have.", *o.IfaceID)
		}
	}
	return nil
}
