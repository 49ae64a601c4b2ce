// Package bootstrap builds a bootable Debian guest image from Debian's package
// archive: a root filesystem made with mmdebstrap and written into a sparse
// ext4 file with `mkfs.ext4 -d`, the kernel of a Debian kernel package (its
// bzImage and the ELF vmlinux extracted from it), a minimal initramfs written
// in Go (busybox-static, the virtio modules of that kernel, an /init that
// configures eth0 from the `ip=` argument and switches into systemd), and a
// sorted package manifest with its sha256.
//
// It needs no root: for any other user (ModeRootless) the steps that make or
// read the guest's file owners run in a user namespace where the user is
// root and ids 1–65535 are the user's subordinate ids, and produce the same
// image as root does (ModeRoot).
//
// The pure pieces (payload detection and decompression, the cpio newc writer,
// the initramfs layout, dpkg status parsing, the mmdebstrap argv and the guest
// configuration files) are separate functions tested as values; Build strings
// them together through a system.Runner and caches results keyed by inputs.
package bootstrap
