package imagebuild

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"banger/internal/bootstrap"
	"banger/internal/disk"
	"banger/internal/image"
)

// File names inside an image directory made by a build or commit.
const (
	RootfsFile   = "rootfs.ext4"
	ManifestFile = "manifest.txt"
	SidecarFile  = "image.json"
	BuildLogFile = "build.log"
)

// DpkgStatus is where Debian records the installed packages.
const DpkgStatus = "/var/lib/dpkg/status"

// DiskTools is what committing needs from the disk layer; *disk.Manager
// provides it.
type DiskTools interface {
	CheckClean(ctx context.Context, path string) error
	CloneRoot(ctx context.Context, src, dst string) (disk.Method, error)
	Flatten(ctx context.Context, base, layer, dst string) error
	Scrub(ctx context.Context, rootfs string) error
	ReadFile(ctx context.Context, image, path string) ([]byte, error)
}

// CommitDisk turns the root disk src of a stopped VM into an image's root
// filesystem at dst: it checks the filesystem read-only (e2fsck -f -n),
// moves src to dst (move, for a build's temporary VM) or clones it
// (reflink or sparse copy, for `image commit`, which keeps the VM), scrubs
// the VM's identity from dst and returns dst's dpkg status file (nil when
// the image has none). On failure dst does not exist.
func CommitDisk(ctx context.Context, t DiskTools, src, dst string, move bool) (status []byte, err error) {
	if err := t.CheckClean(ctx, src); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.Remove(dst)
		}
	}()
	moved := false
	if move {
		if err := os.Rename(src, dst); err == nil {
			moved = true
		} else if !errors.Is(err, syscall.EXDEV) {
			return nil, fmt.Errorf("moving root disk %s to %s: %w", src, dst, err)
		}
	}
	if !moved {
		if _, err := t.CloneRoot(ctx, src, dst); err != nil {
			return nil, err
		}
	}
	return finishCommit(ctx, t, dst)
}

// CommitLayered turns a stopped layered VM (its layer over the image's
// root base) into an image's root filesystem at dst: the base with the
// layer applied (disk.Flatten, which refuses a layer that was not shut
// down cleanly and checks its result), scrubbed of the VM's identity. It
// returns dst's dpkg status file (nil when the image has none). On
// failure dst does not exist.
func CommitLayered(ctx context.Context, t DiskTools, base, layer, dst string) (status []byte, err error) {
	defer func() {
		if err != nil {
			os.Remove(dst)
		}
	}()
	if err := t.Flatten(ctx, base, layer, dst); err != nil {
		return nil, fmt.Errorf("flattening the layer %s over %s: %w", layer, base, err)
	}
	return finishCommit(ctx, t, dst)
}

// finishCommit makes the new image root dst readable, scrubs the VM's
// identity from it and reads its dpkg status.
func finishCommit(ctx context.Context, t DiskTools, dst string) ([]byte, error) {
	if err := os.Chmod(dst, 0o644); err != nil {
		return nil, fmt.Errorf("making %s readable: %w", dst, err)
	}
	if err := t.Scrub(ctx, dst); err != nil {
		return nil, err
	}
	status, err := t.ReadFile(ctx, dst, DpkgStatus)
	if errors.Is(err, disk.ErrNoFile) {
		return nil, nil
	}
	return status, err
}

// Sidecar is the image.json written beside a built or committed image: how
// it was made and from what.
type Sidecar struct {
	Name   string       `json:"name"`
	Source image.Source `json:"source"`
	// Base is the image the build started from, or the committed VM's image.
	Base string `json:"base"`
	// VM is the committed VM (commit only).
	VM string `json:"vm,omitempty"`
	// PackagesFile is "default" (the repository's manifest), the host path
	// of the package file used, or empty when no package file was used.
	PackagesFile   string    `json:"packages_file,omitempty"`
	PackagesSHA256 string    `json:"packages_sha256,omitempty"`
	Manifest       string    `json:"manifest,omitempty"`
	ManifestSHA256 string    `json:"manifest_sha256,omitempty"`
	Packages       int       `json:"packages"`
	KernelVersion  string    `json:"kernel_version,omitempty"`
	BuildLog       string    `json:"build_log,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
}

// ReadSidecar reads the sidecar of the image in dir.
func ReadSidecar(dir string) (Sidecar, error) {
	var s Sidecar
	b, err := os.ReadFile(filepath.Join(dir, SidecarFile))
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("reading %s: %w", filepath.Join(dir, SidecarFile), err)
	}
	return s, nil
}

// Assembly is what Assemble needs: a staging directory already holding
// RootfsFile, the directory it will be renamed to, the base image whose
// kernel and initrd the new image shares, the new image's dpkg status and
// its sidecar (Name, Source, Base, packages and build log filled in).
type Assembly struct {
	Stage      string
	Dir        string
	Base       *image.Image
	DpkgStatus []byte
	Sidecar    Sidecar
	Now        time.Time
}

// Assemble completes the image in a.Stage: it links (or copies) the base
// image's kernel, vmlinux and initrd, writes the package manifest and the
// sidecar, and returns the image as it will be once a.Stage is renamed to
// a.Dir, without an id.
func Assemble(ctx context.Context, a Assembly) (image.Image, error) {
	b := a.Base
	img := image.Image{
		Name: a.Sidecar.Name, Source: a.Sidecar.Source, Dir: a.Dir,
		Rootfs: filepath.Join(a.Dir, RootfsFile), KernelVersion: b.KernelVersion,
		PackagesSHA256: a.Sidecar.PackagesSHA256, BuildLog: a.Sidecar.BuildLog, CreatedAt: a.Now.UTC(),
	}
	for _, f := range []struct {
		src string
		dst *string
	}{{b.Kernel, &img.Kernel}, {b.Vmlinux, &img.Vmlinux}, {b.Initrd, &img.Initrd}} {
		if f.src == "" {
			continue
		}
		name := filepath.Base(f.src)
		if err := linkOrCopy(ctx, f.src, filepath.Join(a.Stage, name)); err != nil {
			return image.Image{}, fmt.Errorf("taking the kernel files of image %s: %w", b.Name, err)
		}
		*f.dst = filepath.Join(a.Dir, name)
	}
	st, err := os.Stat(filepath.Join(a.Stage, RootfsFile))
	if err != nil {
		return image.Image{}, fmt.Errorf("assembling image %s: %w", img.Name, err)
	}
	img.SizeBytes = st.Size()

	sc := a.Sidecar
	sc.KernelVersion, sc.CreatedAt = img.KernelVersion, img.CreatedAt
	if a.DpkgStatus != nil {
		pkgs, err := bootstrap.ParseDpkgStatus(a.DpkgStatus)
		if err != nil {
			return image.Image{}, err
		}
		manifest := bootstrap.RenderManifest(pkgs)
		if err := os.WriteFile(filepath.Join(a.Stage, ManifestFile), manifest, 0o644); err != nil {
			return image.Image{}, fmt.Errorf("writing package manifest: %w", err)
		}
		img.Manifest = filepath.Join(a.Dir, ManifestFile)
		img.ManifestSHA256 = bootstrap.SHA256Hex(manifest)
		sc.Manifest, sc.ManifestSHA256, sc.Packages = ManifestFile, img.ManifestSHA256, len(pkgs)
	}
	js, err := json.MarshalIndent(sc, "", "  ")
	if err != nil {
		return image.Image{}, err
	}
	if err := os.WriteFile(filepath.Join(a.Stage, SidecarFile), append(js, '\n'), 0o644); err != nil {
		return image.Image{}, fmt.Errorf("writing %s: %w", SidecarFile, err)
	}
	return img, nil
}

// linkOrCopy hard-links src to dst (the kernel files are read-only and
// shared between images), copying when the two sit on different
// filesystems.
func linkOrCopy(ctx context.Context, src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	return bootstrap.CopyFile(ctx, src, dst)
}

// Stale reports whether img no longer matches the package file it was
// built from: the repository's default manifest (compared with the one in
// this binary) or a user's package file (re-read through readFile; an
// unreadable file cannot be judged and is not stale). Images built without
// a package file are never stale. sc is the image's sidecar, nil when it
// has none (then the default manifest is assumed).
func Stale(img *image.Image, sc *Sidecar, readFile func(string) ([]byte, error)) bool {
	if img.PackagesSHA256 == "" {
		return false
	}
	if sc == nil || sc.PackagesFile == "" || sc.PackagesFile == DefaultSource {
		return img.Stale(DefaultPackagesSHA256())
	}
	data, err := readFile(sc.PackagesFile)
	if err != nil {
		return false
	}
	return img.Stale(SHA256Hex(data))
}
