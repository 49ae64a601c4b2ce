package firecracker

import (
	"context"
	"errors"
	"fmt"
	"time"

	sdk "github.com/firecracker-microvm/firecracker-go-sdk"
	models "github.com/firecracker-microvm/firecracker-go-sdk/client/models"
)

// apiTimeout bounds the API calls made outside Start (ctrl-alt-del, the
// adoption probe), so a hung VMM cannot hold up a stop.
const apiTimeout = 2 * time.Second

// InstanceState is a VMM's state as reported by `GET /`.
type InstanceState string

// The states Firecracker reports.
const (
	StateNotStarted InstanceState = "Not started"
	StateRunning    InstanceState = "Running"
	StatePaused     InstanceState = "Paused"
)

// fcInitHandlers is the SDK's default initialisation sequence without the
// steps that start the VMM process (the driver starts it, in its own
// session), set up CNI networking, rewrite the kernel arguments or touch
// vsock and MMDS, which banger does not use:
//
//	PUT /logger, PUT /machine-config, GET /machine-config, PUT /boot-source,
//	PUT /drives/{id} for each drive, PUT /network-interfaces/{id}.
//
// Machine.Start then sends InstanceStart.
func fcInitHandlers() sdk.HandlerList {
	return sdk.HandlerList{}.Append(
		sdk.CreateLogFilesHandler,
		sdk.BootstrapLoggingHandler,
		sdk.CreateMachineHandler,
		sdk.CreateBootSourceHandler,
		sdk.AttachDrivesHandler,
		sdk.CreateNetworkInterfacesHandler,
	)
}

// configure sends cfg to the VMM listening on cfg.SocketPath and boots the
// guest, using the SDK's machine handlers.
func (d *Driver) configure(ctx context.Context, cfg sdk.Config) error {
	logger := newSDKLogger(d.log, cfg.VMID)
	client := sdk.NewClient(cfg.SocketPath, logger, false)
	m, err := sdk.NewMachine(ctx, cfg, sdk.WithClient(client), sdk.WithLogger(logger))
	if err != nil {
		return fmt.Errorf("preparing sdk machine: %w", err)
	}
	// The SDK's own validation would refuse the socket that already
	// exists; BuildConfig has validated the spec.
	m.Handlers.Validation = sdk.HandlerList{}.Append(sdk.NetworkConfigValidationHandler)
	m.Handlers.FcInit = fcInitHandlers()
	if err := m.Start(ctx); err != nil {
		return err
	}
	return nil
}

func (d *Driver) client(p Process) *sdk.Client {
	return sdk.NewClient(p.Socket, newSDKLogger(d.log, p.ID), false)
}

// ctrlAltDel asks the guest to shut down (PUT /actions SendCtrlAltDel).
func (d *Driver) ctrlAltDel(ctx context.Context, p Process) error {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	action := models.InstanceActionInfoActionTypeSendCtrlAltDel
	if _, err := d.client(p).CreateSyncAction(ctx, &models.InstanceActionInfo{ActionType: &action}); err != nil {
		return fmt.Errorf("sending ctrl-alt-del to %s: %w", p.Socket, err)
	}
	return nil
}

// Adopt re-attaches to a VMM started earlier, typically by a daemon that
// has since restarted: it checks that the pid still is that VMM (start time
// and command line naming the socket), that the socket is the daemon's
// user's, and asks the VMM for its state. ErrNotRunning means the process is gone.
// A VMM reporting StateNotStarted never booted its guest (the start was
// interrupted); the caller should kill it.
func (d *Driver) Adopt(ctx context.Context, p Process) (InstanceState, error) {
	fail := func(err error) (InstanceState, error) {
		return "", fmt.Errorf("adopting vmm of vm %s (pid %d): %w", p.ID, p.PID, err)
	}
	if !d.Alive(p) {
		return fail(ErrNotRunning)
	}
	args, err := cmdline(p.PID)
	if err != nil {
		return fail(err)
	}
	if !servesSocket(args, p.Socket) {
		return fail(fmt.Errorf("the process does not serve api socket %s (command line %q)", p.Socket, args))
	}
	ok, err := d.ownSocket(p.Socket)
	if err != nil {
		return fail(err)
	}
	if !ok {
		return fail(fmt.Errorf("api socket %s is missing", p.Socket))
	}
	cctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	info, err := d.client(p).GetInstanceInfo(cctx)
	if err != nil {
		return fail(fmt.Errorf("asking the vmm on %s for its state: %w", p.Socket, err))
	}
	if info.Payload == nil || info.Payload.State == nil {
		return fail(errors.New("the vmm reported no state"))
	}
	state := InstanceState(*info.Payload.State)
	d.log.Info("vmm adopted", "vm", p.ID, "pid", p.PID, "state", string(state))
	return state, nil
}

// UpdateDrive tells a running VMM that the backing file of a drive changed
// (PATCH /drives/{id}): after the file grew, the guest sees the new size.
func (d *Driver) UpdateDrive(ctx context.Context, p Process, driveID, path string) error {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	if _, err := d.client(p).PatchGuestDriveByID(ctx, driveID, path); err != nil {
		return fmt.Errorf("updating drive %s of vm %s to %s: %w", driveID, p.ID, path, err)
	}
	return nil
}
