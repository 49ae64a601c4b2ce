package daemon

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"banger/internal/api"
	"banger/internal/image"
	"banger/internal/preflight"
)

func (d *Daemon) handleBootstrapImage(w http.ResponseWriter, r *http.Request) {
	streamImageOp(d, w, r, d.bootstrapImage)
}

// bootstrapImage builds a base image and registers it. An interrupted or
// failed build registers nothing and leaves no files in the images dir.
func (d *Daemon) bootstrapImage(ctx context.Context, req api.BootstrapImageRequest, progress func(api.Progress)) (*image.Image, error) {
	unlock, err := d.reserveImage(ctx, req.Name, "bootstrap", preflight.BootstrapImage)
	if err != nil {
		return nil, err
	}
	defer unlock()
	id := newID()
	outDir := filepath.Join(d.cfg.Paths.ImagesDir(), req.Name+"-"+id)
	if err := os.MkdirAll(d.cfg.Paths.ImagesDir(), 0o755); err != nil {
		return nil, fmt.Errorf("creating images directory: %w", err)
	}
	forward := func(p api.Progress) {
		progress(p)
		d.events.publish(api.Event{Type: api.EventImageBuild, Name: req.Name, Progress: &p})
	}
	d.log.Info("bootstrapping image", "image", req.Name, "dir", outDir)
	img, err := d.deps.Bootstrap.Bootstrap(ctx, req, outDir, forward)
	if err != nil {
		_ = os.RemoveAll(outDir)
		d.log.Error("bootstrapping image failed", "image", req.Name, "err", err)
		if ctx.Err() != nil {
			return nil, api.Errorf(api.CodeInterrupted, "bootstrapping image %s: interrupted; nothing was registered", req.Name)
		}
		return nil, &api.Error{Code: api.CodeInternal, Message: fmt.Sprintf("bootstrapping image %s: %v", req.Name, err), Logs: []string{d.cfg.Paths.DaemonLog()}}
	}
	img.ID = "img-" + id
	img.Name = req.Name
	img.Source = image.FromBootstrap
	img.Dir = outDir
	if err := d.store.CreateImage(context.WithoutCancel(ctx), &img); err != nil {
		_ = os.RemoveAll(outDir)
		return nil, err
	}
	d.log.Info("image registered", "image", img.Name, "dir", outDir)
	d.events.publish(api.Event{Type: api.EventImageAdded, Name: img.Name, Image: d.imageToAPI(&img, 0)})
	return &img, nil
}
