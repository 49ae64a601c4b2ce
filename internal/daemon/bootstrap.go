package daemon

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"banger/internal/api"
	"banger/internal/image"
	"banger/internal/imagebuild"
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
	d.pruneMu.RLock()
	defer d.pruneMu.RUnlock()
	id := newID()
	outDir := filepath.Join(d.cfg.Paths.ImagesDir(), req.Name+"-"+id)
	if err := os.MkdirAll(d.cfg.Paths.ImagesDir(), 0o755); err != nil {
		return nil, fmt.Errorf("creating images directory: %w", err)
	}
	logPath := filepath.Join(buildLogDir(d.cfg.Paths), req.Name+"-"+id+".log")
	log, err := createLog(logPath)
	if err != nil {
		return nil, err
	}
	defer log.Close()
	forward := func(p api.Progress) {
		progress(p)
		if !p.Finished {
			fmt.Fprintf(log, "== %s: %s\n", p.Step, p.Message)
		}
		d.events.publish(api.Event{Type: api.EventImageBuild, Name: req.Name, Progress: &p})
	}
	forward(api.Progress{Step: "log", Message: "bootstrap log: " + logPath})
	d.log.Info("bootstrapping image", "image", req.Name, "dir", outDir, "log", logPath)
	img, err := d.deps.Bootstrap.Bootstrap(ctx, req, outDir, log, forward)
	if err != nil {
		_ = os.RemoveAll(outDir)
		fmt.Fprintf(log, "== failed: %v\n", err)
		d.log.Error("bootstrapping image failed", "image", req.Name, "err", err, "log", logPath)
		if ctx.Err() != nil {
			return nil, api.Errorf(api.CodeInterrupted, "bootstrapping image %s: interrupted; nothing was registered", req.Name).WithLogs(logPath)
		}
		e := &api.Error{Code: api.CodeInternal, Message: fmt.Sprintf("bootstrapping image %s: %v", req.Name, err), Logs: []string{logPath, d.cfg.Paths.DaemonLog()}}
		if diskFull(err) {
			e.Code, e.Hint = api.CodeUnavailable, diskFullHint
		}
		return nil, e
	}
	img.ID = "img-" + id
	img.Name = req.Name
	img.Source = image.FromBootstrap
	img.Dir = outDir
	// The log stays with the image, as a build's does.
	img.BuildLog = filepath.Join(outDir, imagebuild.BuildLogFile)
	if err := os.Rename(logPath, img.BuildLog); err != nil {
		img.BuildLog = logPath
	}
	if err := d.store.CreateImage(context.WithoutCancel(ctx), &img); err != nil {
		_ = os.RemoveAll(outDir)
		return nil, err
	}
	d.log.Info("image registered", "image", img.Name, "dir", outDir)
	d.events.publish(api.Event{Type: api.EventImageAdded, Name: img.Name, Image: d.imageToAPI(&img, 0)})
	return &img, nil
}

// createLog opens a new log file, making its directory.
func createLog(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("creating log %s: %w", path, err)
	}
	return f, nil
}
