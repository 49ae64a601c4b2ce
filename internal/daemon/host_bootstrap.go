package daemon

import (
	"context"
	"io"
	"log/slog"
	"time"

	"banger/internal/api"
	"banger/internal/bootstrap"
	"banger/internal/image"
	"banger/internal/system"
)

// hostBootstrap builds images with internal/bootstrap.
type hostBootstrap struct {
	cacheDir string
	log      *slog.Logger
}

func (h *hostBootstrap) Bootstrap(ctx context.Context, req api.BootstrapImageRequest, outDir string, log io.Writer, progress func(api.Progress)) (image.Image, error) {
	res, err := bootstrap.Build(ctx, bootstrap.Deps{Log: h.log, Runner: system.Exec{Log: log}},
		bootstrap.Options{Name: req.Name, Suite: req.Suite, SizeBytes: req.SizeBytes, Packages: req.Packages,
			KernelPackage: req.KernelPackage, Kernel: req.Kernel, Mirror: req.Mirror, OutDir: outDir, CacheDir: h.cacheDir, Refresh: req.Refresh},
		func(p bootstrap.Progress) {
			progress(api.Progress{Step: string(p.Step), Message: p.Message, Seconds: p.Elapsed.Seconds()})
		})
	if err != nil {
		return image.Image{}, err
	}
	return image.Image{
		Kernel: res.Kernel, Vmlinux: res.Vmlinux, Initrd: res.Initrd, Rootfs: res.Rootfs,
		Manifest: res.Manifest, ManifestSHA256: res.ManifestSHA256, KernelVersion: res.KernelVersion,
		SizeBytes: res.RootfsSize, CreatedAt: time.Now().UTC(),
	}, nil
}
