package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"banger/internal/api"
	"banger/internal/image"
	"banger/internal/preflight"
	"banger/internal/runtimebundle"
	"banger/internal/store"
)

// BundleImage is the name under which a runtime bundle's kernel and root
// file system are an image.
const BundleImage = "bundle"

// Runtime is the runtime bundle the daemon uses: where it was found and
// what it holds. Its VMM is preferred over PATH, and its kernel, initrd
// and root file system are the image "bundle".
type Runtime struct {
	Dir    string
	Source runtimebundle.Source
	Bundle runtimebundle.Bundle
}

// FindRuntime resolves the runtime bundle from the runtime_bundle key, a
// source checkout holding the daemon binary (./runtime), or the
// installation's ../lib/banger. No bundle is not an error: images then come
// from `banger image bootstrap`.
func FindRuntime(override, executable string) (*Runtime, error) {
	loc := runtimebundle.Locator{Override: override, WorkDir: filepath.Dir(executable), Executable: executable}
	c, err := runtimebundle.Resolve(loc)
	if err != nil {
		// An older bundle without bundle.json is still one.
		for _, cand := range loc.Candidates() {
			if b, lerr := runtimebundle.LoadOrInfer(cand.Dir); lerr == nil {
				return &Runtime{Dir: cand.Dir, Source: cand.Source, Bundle: b}, nil
			}
		}
		if errors.Is(err, runtimebundle.ErrNoBundle) && override == "" {
			return nil, nil
		}
		return nil, err
	}
	b, err := runtimebundle.LoadOrInfer(c.Dir)
	if err != nil {
		return nil, err
	}
	return &Runtime{Dir: c.Dir, Source: c.Source, Bundle: b}, nil
}

// VMM is the bundle's VMM binary, "" when it carries none.
func (r *Runtime) VMM() string {
	if r == nil {
		return ""
	}
	return runtimebundle.Abs(r.Dir, r.Bundle.VMM)
}

// Describe says which runtime is in use, for status and the doctor.
func (r *Runtime) Describe() string {
	if r == nil {
		return ""
	}
	return fmt.Sprintf("%s (%s): %s, kernel %s", r.Dir, r.Source, r.Bundle.Name, r.Bundle.KernelVersion)
}

// image describes the bundle's files as an image. Its id follows the root
// file system's checksum, so a changed bundle is a new image.
// optional names the operations a host with this runtime can do without:
// with a bundle that has a kernel and a root file system, image bootstrap.
func (r *Runtime) optional() map[preflight.Op]string {
	if r == nil || r.Bundle.Kernel == "" || r.Bundle.Rootfs == "" {
		return nil
	}
	return map[preflight.Op]string{preflight.BootstrapImage: "new VMs can use the runtime bundle's image \"bundle\" instead"}
}

func (r *Runtime) image() (image.Image, error) {
	b, dir := r.Bundle, r.Dir
	rootfs := runtimebundle.Abs(dir, b.Rootfs)
	st, err := os.Stat(rootfs)
	if err != nil {
		return image.Image{}, fmt.Errorf("runtime bundle %s: %w", dir, err)
	}
	id := "img-bundle"
	if sum := b.Files[b.Rootfs]; len(sum) >= 12 {
		id += "-" + sum[:12]
	}
	return image.Image{ID: id, Name: BundleImage, Source: image.FromBundle, Dir: dir,
		Kernel: runtimebundle.Abs(dir, b.Kernel), Vmlinux: runtimebundle.Abs(dir, b.Vmlinux), Initrd: runtimebundle.Abs(dir, b.Initrd),
		Rootfs: rootfs, Manifest: runtimebundle.Abs(dir, b.Manifest), KernelVersion: b.KernelVersion,
		SizeBytes: st.Size(), CreatedAt: st.ModTime().UTC()}, nil
}

// registerBundleImage makes the runtime bundle's files the image "bundle",
// so a host with a bundle and no bootstrapped image creates VMs. A bundle
// that changed replaces the image unless VMs still boot from the old one.
func (d *Daemon) registerBundleImage(ctx context.Context) error {
	if d.deps.Runtime == nil {
		return nil
	}
	want, err := d.deps.Runtime.image()
	if err != nil {
		return err
	}
	have, err := d.store.Image(ctx, BundleImage)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return err
	case have.ID == want.ID && have.Rootfs == want.Rootfs:
		return nil
	default:
		users, err := d.store.ImageUsers(ctx)
		if err != nil {
			return err
		}
		if users[have.ID] > 0 {
			return fmt.Errorf("the runtime bundle in %s changed, but %d vms still use the image %s registered from its earlier content: remove them to use the new bundle", d.deps.Runtime.Dir, users[have.ID], BundleImage)
		}
		if err := d.store.DeleteImage(ctx, have.ID); err != nil {
			return err
		}
	}
	if err := d.store.CreateImage(ctx, &want); err != nil {
		return err
	}
	d.log.Info("runtime bundle registered as an image", "image", BundleImage, "dir", d.deps.Runtime.Dir)
	d.events.publish(api.Event{Type: api.EventImageAdded, Name: want.Name, Image: d.imageToAPI(&want, 0)})
	return nil
}

// defaultImage is the image `vm create` uses without --image: the
// configured default_image, or the runtime bundle's when that image does
// not exist.
func (d *Daemon) defaultImage(ctx context.Context) string {
	name := d.cfg.DefaultImage
	if _, err := d.store.Image(ctx, name); errors.Is(err, store.ErrNotFound) && d.deps.Runtime != nil {
		if _, err := d.store.Image(ctx, BundleImage); err == nil {
			return BundleImage
		}
	}
	return name
}
