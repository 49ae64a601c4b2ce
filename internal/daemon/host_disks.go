package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"banger/internal/config"
	"banger/internal/disk"
	"banger/internal/guest"
	"banger/internal/image"
	"banger/internal/imagebuild"
	"banger/internal/vm"
)

// sshKeys holds banger's own SSH key and known_hosts.
type sshKeys struct {
	paths config.Paths
	// zone is the daemon's DNS zone without the final dot ("vm", or
	// "alice.vm" for a user): ssh verifies the guest as NAME.ZONE.
	zone string
	mu   sync.Mutex
}

func (k *sshKeys) user() (guest.UserKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := os.MkdirAll(k.paths.SSHDir(), 0o700); err != nil {
		return guest.UserKey{}, fmt.Errorf("creating %s: %w", k.paths.SSHDir(), err)
	}
	return guest.EnsureUserKey(k.paths.UserKey())
}

func (k *sshKeys) knownHosts() *guest.KnownHosts { return guest.NewKnownHosts(k.paths.KnownHosts()) }

// hostNames are the names a VM's host key is pinned for: NAME.vm (as the
// guests know it), NAME.ZONE (as the host does) and its address.
func (k *sshKeys) hostNames(v *vm.VM) []string {
	names := guest.HostNames(v.Name, "vm", v.IP)
	if zone := strings.TrimSuffix(k.zone, "."); zone != "" && zone != "vm" {
		names = append(names, v.Name+"."+zone)
	}
	return names
}

// hostDisks makes and removes VM disks and writes guest identity.
type hostDisks struct {
	m    *disk.Manager
	keys *sshKeys
	// dataDir is where VM disks and images live; Layout probes it.
	dataDir    string
	layoutOnce sync.Once
	layout     vm.Layout
}

// Layout is Clone where the data directory reflinks (XFS, btrfs): the
// clone is instant, shares every block with the image and has none of an
// overlay's costs (copy-up of a whole file on its first write, EXDEV when
// renaming the image's directories). Elsewhere (ext4, tmpfs) a full copy
// would cost the image's size and seconds per VM, so VMs share the image
// read-only under their own sparse layer. The probe runs once.
func (h *hostDisks) Layout() vm.Layout {
	h.layoutOnce.Do(func() {
		h.layout = vm.Layered
		if yes, err := disk.ReflinkSupported(h.dataDir); err == nil && yes {
			h.layout = vm.Clone
		}
	})
	return h.layout
}

func (h *hostDisks) MakeLayer(ctx context.Context, v *vm.VM, size int64) error {
	return h.m.MakeLayer(ctx, v.LayerDisk(), max(size, disk.MinLayerSize))
}

func (h *hostDisks) CloneRoot(ctx context.Context, img *image.Image, v *vm.VM) (string, error) {
	m, err := h.m.CloneRoot(ctx, img.Rootfs, v.RootDisk())
	return string(m), err
}

func (h *hostDisks) WriteIdentity(ctx context.Context, v *vm.VM, n NetInfo) error {
	user, err := h.keys.user()
	if err != nil {
		return err
	}
	hk, err := guest.NewHostKey("banger host key of " + v.Name + "." + strings.TrimSuffix(h.keys.zone, "."))
	if err != nil {
		return err
	}
	id := disk.Identity{Hostname: v.Name, Domain: "vm", Address: n.IP, Gateway: n.Gateway,
		AuthorizedKeys: user.AuthorizedKey, HostKeyPrivate: hk.PrivatePEM, HostKeyPublic: hk.AuthorizedKey}
	if v.LayoutOrClone() == vm.Layered {
		err = h.m.WriteLayerIdentity(ctx, v.Base, v.LayerDisk(), id)
	} else {
		err = h.m.WriteIdentity(ctx, v.RootDisk(), id)
	}
	if err != nil {
		return err
	}
	return h.keys.knownHosts().Pin(h.keys.hostNames(v), hk.Public)
}

func (h *hostDisks) CopyDisks(ctx context.Context, src, dst *vm.VM) error {
	pairs := [][2]string{{src.WorkDisk(), dst.WorkDisk()}}
	if src.LayoutOrClone() == vm.Layered {
		pairs = append(pairs, [2]string{src.LayerDisk(), dst.LayerDisk()})
	} else {
		pairs = append(pairs, [2]string{src.RootDisk(), dst.RootDisk()})
	}
	for _, p := range pairs {
		if _, err := os.Stat(p[0]); errors.Is(err, os.ErrNotExist) && p[0] == src.WorkDisk() {
			continue // a vm made without a work disk
		}
		if _, err := h.m.CloneRoot(ctx, p[0], p[1]); err != nil {
			return err
		}
	}
	return nil
}

func (h *hostDisks) NewHostKey(_ context.Context, v *vm.VM) (guest.HostKey, error) {
	hk, err := guest.NewHostKey("banger host key of " + v.Name + "." + strings.TrimSuffix(h.keys.zone, "."))
	if err != nil {
		return guest.HostKey{}, err
	}
	return hk, h.keys.knownHosts().Pin(h.keys.hostNames(v), hk.Public)
}

func (h *hostDisks) CreateWork(ctx context.Context, v *vm.VM) error {
	return h.m.CreateWork(ctx, v.WorkDisk(), v.DiskBytes)
}

func (h *hostDisks) Grow(ctx context.Context, v *vm.VM, size int64) error {
	return h.m.Grow(ctx, v.WorkDisk(), size)
}

func (h *hostDisks) ExtendWork(ctx context.Context, v *vm.VM, size int64) error {
	return h.m.Extend(v.WorkDisk(), size)
}

func (h *hostDisks) GrowRoot(ctx context.Context, v *vm.VM, size int64) error {
	return h.m.Grow(ctx, v.WritableRoot(), size)
}

func (h *hostDisks) CommitRoot(ctx context.Context, v *vm.VM, dst string, move bool) ([]byte, error) {
	if v.LayoutOrClone() == vm.Layered {
		// The stopped guest synced its layer but could not unmount it.
		if err := h.m.Repair(ctx, v.LayerDisk()); err != nil {
			return nil, err
		}
		return imagebuild.CommitLayered(ctx, h.m, v.Base, v.LayerDisk(), dst)
	}
	return imagebuild.CommitDisk(ctx, h.m, v.RootDisk(), dst, move)
}

func (h *hostDisks) Remove(ctx context.Context, v *vm.VM) error {
	var errs []error
	for _, p := range []string{v.RootDisk(), v.LayerDisk(), v.WorkDisk()} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if _, err := disk.RemoveTemps(v.Dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	errs = append(errs, h.keys.knownHosts().Unpin(h.keys.hostNames(v)))
	return errors.Join(errs...)
}
