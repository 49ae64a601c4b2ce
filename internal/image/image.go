package image

import (
	"fmt"
	"time"

	"banger/internal/vm"
)

// Source says how an image came to be.
type Source string

// Image sources.
const (
	FromBootstrap Source = "bootstrap"
	FromBuild     Source = "build"
	FromCommit    Source = "commit"
	FromBundle    Source = "bundle"
)

// Image is a bootable guest: kernel, initrd and a root filesystem.
type Image struct {
	ID             string
	Name           string
	Source         Source
	Dir            string // directory holding the image's files
	Kernel         string // bzImage
	Vmlinux        string // uncompressed ELF kernel, for VMMs without bzImage support
	Initrd         string
	Rootfs         string
	Manifest       string // sorted list of installed packages
	ManifestSHA256 string
	PackagesSHA256 string // sha256 of the package file the image was built from, if any
	KernelVersion  string
	SizeBytes      int64 // apparent size of the rootfs
	BuildLog       string
	CreatedAt      time.Time
}

// ValidateName checks an image name; images follow the same rule as VMs so
// they can appear in paths and DNS-like contexts.
func ValidateName(name string) error {
	if err := vm.ValidateName(name); err != nil {
		return fmt.Errorf("invalid image name: %w", err)
	}
	return nil
}

// Stale reports whether an image built from a package file no longer
// matches the current package file's hash. Images not built from a package
// file are never stale.
func (i *Image) Stale(currentPackagesSHA256 string) bool {
	return i.PackagesSHA256 != "" && currentPackagesSHA256 != "" && i.PackagesSHA256 != currentPackagesSHA256
}
