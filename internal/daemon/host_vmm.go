package daemon

import (
	"cmp"
	"context"
	"errors"
	"time"

	"banger/internal/firecracker"
	"banger/internal/image"
	"banger/internal/vm"
)

// hostVMM drives VMMs through Firecracker's API.
type hostVMM struct {
	drv    *firecracker.Driver
	binary string
	kind   string
}

func (h *hostVMM) Start(ctx context.Context, v *vm.VM, img *image.Image, n NetInfo) (vm.Process, error) {
	// Firecracker before bzImage support boots the ELF vmlinux; QEMU
	// boots the bzImage directly.
	kernel := img.Vmlinux
	if h.kind == "qemu" || kernel == "" {
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
	p, err := h.drv.Start(ctx, spec)
	if err != nil {
		return vm.Process{}, err
	}
	return vm.Process{PID: p.PID, StartTime: p.StartTime}, nil
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
