// Package disk makes and changes the disk image files behind banger's VMs:
// per-VM root disks cloned from an image's rootfs (a reflink when the
// filesystem allows, else a sparse copy), empty ext4 work disks, offline
// growth of ext4 images, the guest identity (hostname, resolver,
// machine-id, SSH keys) written into a root disk before its first boot,
// and layer disks: the overlayfs upper a VM writes over a shared, read-only
// image, with the identity written into it and Flatten to turn image plus
// layer back into one standalone image. It never mounts anything:
// filesystem tools (mkfs.ext4, e2fsck, resize2fs, debugfs) run on the
// image files through banger/internal/system.
package disk
