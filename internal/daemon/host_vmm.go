package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"banger/internal/firecracker"
	"banger/internal/image"
	"banger/internal/vm"
)

// hostVMM drives VMMs through Firecracker's API.
type hostVMM struct {
	drv    *firecracker.Driver
	binary string
}

func (h *hostVMM) Start(ctx context.Context, v *vm.VM, img *image.Image, n NetInfo) (vm.Process, error) {
	p, err := h.drv.Start(ctx, h.spec(v, img, n))
	if err != nil {
		return vm.Process{}, err
	}
	return vm.Process{PID: p.PID, StartTime: p.StartTime}, nil
}

func (h *hostVMM) Restore(ctx context.Context, v *vm.VM, img *image.Image, n NetInfo) (vm.Process, error) {
	p, err := h.drv.Restore(ctx, h.spec(v, img, n), suspendFiles(v), false)
	if err != nil {
		return vm.Process{}, err
	}
	return vm.Process{PID: p.PID, StartTime: p.StartTime}, nil
}

func (h *hostVMM) RestoreAs(ctx context.Context, v *vm.VM, img *image.Image, n NetInfo, state, mem string) (vm.Process, error) {
	p, err := h.drv.RestoreAs(ctx, h.spec(v, img, n), firecracker.Snapshot{StatePath: state, MemPath: mem})
	if err != nil {
		return vm.Process{}, err
	}
	return vm.Process{PID: p.PID, StartTime: p.StartTime}, nil
}

func (h *hostVMM) SnapshotTo(ctx context.Context, v *vm.VM, state, mem string) error {
	return h.snapshot(ctx, v, firecracker.Snapshot{StatePath: state, MemPath: mem})
}

func suspendFiles(v *vm.VM) firecracker.Snapshot {
	return firecracker.Snapshot{StatePath: v.SuspendState(), MemPath: v.SuspendMemory()}
}

func (h *hostVMM) Pause(ctx context.Context, v *vm.VM) error  { return h.drv.Pause(ctx, fcProcess(v)) }
func (h *hostVMM) Resume(ctx context.Context, v *vm.VM) error { return h.drv.Resume(ctx, fcProcess(v)) }

// Snapshot has the VMM write the files, then syncs them: a suspended VM's
// state must survive a host crash as its disks do.
func (h *hostVMM) Snapshot(ctx context.Context, v *vm.VM) error {
	return h.snapshot(ctx, v, suspendFiles(v))
}

func (h *hostVMM) snapshot(ctx context.Context, v *vm.VM, s firecracker.Snapshot) error {
	if err := h.drv.CreateSnapshot(ctx, fcProcess(v), s); err != nil {
		return err
	}
	for _, p := range []string{s.StatePath, s.MemPath} {
		if err := syncFile(p); err != nil {
			return errors.Join(err, s.Remove())
		}
	}
	return nil
}

// spec maps a VM and its image to the driver's launch spec.
func (h *hostVMM) spec(v *vm.VM, img *image.Image, n NetInfo) firecracker.Spec {
	// The ELF vmlinux: Firecracker before bzImage support needs it, and
	// QEMU (microvm, PVH entry) reaches the initramfs ~0.3 s sooner with
	// it under TCG than with the bzImage, which the guest first
	// decompresses (measured side by side, docs/images.md). An image
	// without one boots its bzImage.
	kernel := img.Vmlinux
	if kernel == "" {
		kernel = img.Kernel
	}
	spec := firecracker.Spec{
		ID: v.ID, Binary: h.binary, Socket: v.Socket, StateDir: v.StateDir,
		Kernel: kernel, Initrd: img.Initrd,
		Boot:      firecracker.Boot{GuestIP: n.IP, Gateway: n.Gateway, PrefixLen: n.PrefixLen, Hostname: v.Name, Nameserver: n.Nameserver},
		RootDrive: v.RootDisk(), WorkDrive: v.WorkDisk(),
		TAP: v.TAP, MAC: v.MAC, VCPUs: v.CPUs, MemoryMiB: v.MemoryMiB,
	}
	if v.LayoutOrClone() == vm.Layered {
		// The image's root, shared read-only; the VM writes to its layer,
		// made over the base it recorded.
		spec.RootDrive, spec.LayerDrive = cmp.Or(v.Base, img.Rootfs), v.LayerDisk()
	}
	return spec
}

// version asks a VMM binary for its version, for the doctor.
func (h *hostVMM) version(ctx context.Context, binary string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := h.drv.Version(ctx, binary)
	if err != nil {
		return "", err
	}
	return info.String(), nil
}

func fcProcess(v *vm.VM) firecracker.Process {
	return firecracker.Process{ID: v.ID, PID: v.Process.PID, StartTime: v.Process.StartTime, Socket: v.Socket}
}

func (h *hostVMM) Shutdown(ctx context.Context, v *vm.VM, timeout time.Duration) error {
	err := h.drv.Shutdown(ctx, fcProcess(v), timeout)
	if errors.Is(err, firecracker.ErrNotRunning) {
		return nil
	}
	return err
}

func (h *hostVMM) Kill(ctx context.Context, v *vm.VM) error {
	err := h.drv.Kill(ctx, fcProcess(v))
	if errors.Is(err, firecracker.ErrNotRunning) {
		return nil
	}
	return err
}

func (h *hostVMM) UpdateWorkDrive(ctx context.Context, v *vm.VM) error {
	return h.drv.UpdateDrive(ctx, fcProcess(v), firecracker.WorkDriveID, v.WorkDisk())
}

func (h *hostVMM) Serving() map[string]vm.Process {
	out := map[string]vm.Process{}
	for sock, p := range firecracker.ServingSockets() {
		out[sock] = vm.Process{PID: p.PID, StartTime: p.StartTime}
	}
	return out
}

func (h *hostVMM) Alive(p vm.Process) bool {
	return h.drv.Alive(firecracker.Process{PID: p.PID, StartTime: p.StartTime})
}

// syncFile flushes a file the VMM wrote to the disk.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	return nil
}
