package daemon

import (
	"context"
	"fmt"

	"banger/internal/api"
	"banger/internal/image"
	"banger/internal/imagebuild"
	"banger/internal/preflight"
	"banger/internal/vm"
)

// commitImage turns a stopped VM's root disk into a new image (the VM keeps
// its disk): for customising an image by hand.
func (d *Daemon) commitImage(ctx context.Context, req api.CommitImageRequest, progress func(api.Progress)) (*image.Image, error) {
	unlock, err := d.reserveImage(ctx, req.Name, "commit", preflight.CommitImage)
	if err != nil {
		return nil, err
	}
	defer unlock()
	v, unlockVM, _, err := d.lockAndLoad(ctx, req.VM, vm.OpCommit)
	if err != nil {
		return nil, err
	}
	defer unlockVM()
	if v.Hidden {
		return nil, api.Errorf(api.CodeConflict, "vm %s is a temporary build vm", v.Name)
	}
	base, err := d.store.Image(ctx, v.ImageName)
	if err != nil {
		return nil, fmt.Errorf("reading image %s of vm %s: %w", v.ImageName, v.Name, err)
	}
	j, err := d.newImageJob("commit", req.Name, progress)
	if err != nil {
		return nil, err
	}
	j.base, j.v = &base, v
	// The image inherits what its base was built from: the VM started as
	// that image, so it goes stale with the same package file.
	j.sidecar = imagebuild.Sidecar{Name: req.Name, Source: image.FromCommit, Base: base.Name, VM: v.Name, PackagesSHA256: base.PackagesSHA256}
	if bs, err := imagebuild.ReadSidecar(base.Dir); err == nil {
		j.sidecar.PackagesFile = bs.PackagesFile
	}
	j.log.Printf("committing the root disk of vm %s (image %s) as image %s", v.Name, base.Name, req.Name)
	return j.run(ctx, append(j.commitSteps(), j.registerStep()))
}
