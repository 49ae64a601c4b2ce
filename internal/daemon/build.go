package daemon

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"banger/internal/api"
	"banger/internal/guest"
	"banger/internal/image"
	"banger/internal/imagebuild"
	"banger/internal/preflight"
	"banger/internal/store"
	"banger/internal/vm"
)

// buildWorkDisk is the work disk of a build's temporary VM: the build
// provisions the root disk, so the smallest useful size will do.
const buildWorkDisk = 64 * vm.MiB

func (d *Daemon) handleBuildImage(w http.ResponseWriter, r *http.Request) {
	streamImageOp(d, w, r, d.buildImage)
}

func (d *Daemon) handleCommitImage(w http.ResponseWriter, r *http.Request) {
	streamImageOp(d, w, r, d.commitImage)
}

// streamImageOp decodes an image operation's request, runs it with its progress
// streamed, and ends the stream with the image or the error (a failed step
// keeps its name and logs).
func streamImageOp[R any](d *Daemon, w http.ResponseWriter, r *http.Request, op func(context.Context, R, func(api.Progress)) (*image.Image, error)) {
	var req R
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	pw := newProgressWriter(w)
	img, err := op(r.Context(), req, pw.Progress)
	if err != nil {
		pw.finish(api.StreamLine{}, err)
		return
	}
	pw.finish(api.StreamLine{Image: d.imageToAPI(img, 0)}, nil)
}

// buildPlan validates a build request and turns it into what to provision.
func buildPlan(req api.BuildImageRequest) (imagebuild.Plan, error) {
	var p imagebuild.Plan
	var errs []error
	switch {
	case req.NoPackages && req.PackagesFile != "":
		errs = append(errs, errors.New("a package file and no packages were both asked for"))
	case req.NoPackages:
	case req.PackagesFile == "":
		p.Packages = imagebuild.DefaultPackageFile()
		// The default image's setup runs first of the scripts, so the
		// build's own can change what it did.
		p.Scripts = append(p.Scripts, imagebuild.DefaultSetupScript())
	default:
		dir := ""
		if req.PackagesPath != "" {
			dir = filepath.Dir(req.PackagesPath)
		}
		pf, err := imagebuild.ParsePackageFile([]byte(req.PackagesFile), dir, req.PackagesPath)
		if err != nil {
			errs = append(errs, err)
		}
		p.Packages = pf
	}
	for _, deb := range p.Packages.Debs {
		if st, err := os.Stat(deb); err != nil || !st.Mode().IsRegular() {
			errs = append(errs, fmt.Errorf("local package %s: not a readable file", deb))
		}
	}
	for _, c := range req.Copies {
		switch {
		case !filepath.IsAbs(c.Src):
			errs = append(errs, fmt.Errorf("copy source %q must be an absolute host path", c.Src))
		case !strings.HasPrefix(c.Dest, "/"):
			errs = append(errs, fmt.Errorf("copy destination %q must be an absolute guest path", c.Dest))
		default:
			if _, err := os.Lstat(c.Src); err != nil {
				errs = append(errs, fmt.Errorf("copy source: %w", err))
			}
		}
		p.Copies = append(p.Copies, imagebuild.Copy{Src: c.Src, Dest: c.Dest})
	}
	for i, s := range req.Scripts {
		if strings.TrimSpace(s.Content) == "" {
			errs = append(errs, fmt.Errorf("script %d (%s) is empty", i+1, s.Name))
		}
		p.Scripts = append(p.Scripts, imagebuild.Script{Name: s.Name, Content: s.Content})
	}
	p.Modules = req.Modules
	if req.AptProxy != "" {
		u, err := image.ParseAptProxy(req.AptProxy)
		if err != nil {
			errs = append(errs, err)
		}
		p.AptProxy = u
	}
	if err := errors.Join(errs...); err != nil {
		return p, api.Errorf(api.CodeInvalid, "image build: %v", err)
	}
	return p, nil
}

// buildImage boots a hidden temporary VM from the base image, provisions it
// over one SSH connection, shuts it down, and commits its root disk as a
// new image. Every step registers an undo: a failure or an interruption
// (the client going away) removes the temporary VM, its TAP and disks and
// any half-made image directory, and registers nothing.
func (d *Daemon) buildImage(ctx context.Context, req api.BuildImageRequest, progress func(api.Progress)) (*image.Image, error) {
	if err := image.ValidateName(req.Name); err != nil {
		return nil, api.Errorf(api.CodeInvalid, "%v", err)
	}
	if req.Base == "" {
		req.Base = d.cfg.DefaultImage
	}
	bp, err := buildPlan(req)
	if err != nil {
		return nil, err
	}
	ops := []preflight.Op{preflight.BuildImage}
	if req.SizeBytes != 0 {
		ops = append(ops, preflight.GrowDisk)
	}
	unlock, err := d.reserveImage(ctx, req.Name, "build", ops...)
	if err != nil {
		return nil, err
	}
	defer unlock()
	base, provision, err := d.prepareBuild(ctx, req, &bp)
	if err != nil {
		return nil, err
	}
	j, err := d.newImageJob("build", req.Name, progress)
	if err != nil {
		return nil, err
	}
	j.base, j.move = &base, true
	j.sidecar = imagebuild.Sidecar{Name: req.Name, Source: image.FromBuild, Base: base.Name,
		PackagesFile: bp.Packages.Source, PackagesSHA256: bp.Packages.SHA256}
	j.log.Printf("building image %s from %s: %d copies, packages from %s (%d names, %d local files, sha256 %s), modules %v, %d scripts, apt proxy %s",
		req.Name, base.Name, len(bp.Copies), packagesSource(bp.Packages), len(bp.Packages.Names), len(bp.Packages.Debs), bp.Packages.SHA256, bp.Modules, len(bp.Scripts), cmp.Or(bp.AptProxy, "none"))
	d.log.Info("building image", "image", req.Name, "base", base.Name, "vm", j.op, "log", j.logPath)
	return j.run(ctx, j.buildSteps(req, provision))
}

// prepareBuild checks the request against the database (a free name, a
// base image that fits) and turns the plan into provisioning steps.
func (d *Daemon) prepareBuild(ctx context.Context, req api.BuildImageRequest, bp *imagebuild.Plan) (image.Image, []imagebuild.Step, error) {
	base, err := d.store.Image(ctx, req.Base)
	if errors.Is(err, store.ErrNotFound) {
		return image.Image{}, nil, notFoundImage(req.Base)
	} else if err != nil {
		return image.Image{}, nil, err
	}
	if req.SizeBytes != 0 && req.SizeBytes < base.SizeBytes {
		return image.Image{}, nil, api.Errorf(api.CodeInvalid, "--size %s is smaller than image %s's %s root file system; images can only grow", vm.FormatSize(req.SizeBytes), base.Name, vm.FormatSize(base.SizeBytes))
	}
	bp.KernelVersion = base.KernelVersion
	steps, err := imagebuild.Steps(*bp)
	if err != nil {
		return image.Image{}, nil, api.Errorf(api.CodeInvalid, "%v", err)
	}
	return base, steps, nil
}

func packagesSource(pf imagebuild.PackageFile) string {
	switch {
	case pf.Empty() && pf.SHA256 == "":
		return "nowhere"
	case pf.Source == "":
		return "the request"
	}
	return pf.Source
}

// buildSteps declares image build: boot a temporary VM, connect, run the
// provisioning steps, shut it down, commit its root disk, remove the VM and
// register the image. The temporary VM goes before the image is
// registered, so a registered image never has a build VM left behind.
func (j *imageJob) buildSteps(req api.BuildImageRequest, provision []imagebuild.Step) []step {
	create := api.CreateVMRequest{Name: j.op, Image: j.base.Name, Hidden: true, CPUs: req.CPUs, MemoryMiB: req.MemoryMiB, DiskBytes: buildWorkDisk}
	if req.SizeBytes > j.base.SizeBytes {
		create.RootBytes = req.SizeBytes
	}
	steps := []step{
		{name: "vm", kind: imagebuild.KindBuilder, message: "booting temporary vm " + j.op + " from image " + j.base.Name,
			do: func(ctx context.Context) error { return j.bootVM(ctx, create) }, undo: j.dropVM},
		{name: "connect", kind: imagebuild.KindBoot, message: "waiting for ssh on the temporary vm", do: j.connect, undo: j.disconnect},
	}
	for _, s := range provision {
		s := s
		steps = append(steps, step{name: s.Name, kind: s.Kind, message: s.Message,
			do: func(ctx context.Context) error { return s.Run(ctx, j.conn, j.log) }})
	}
	steps = append(steps, step{name: "shutdown", kind: imagebuild.KindShutdown, message: "shutting the guest down", do: j.shutdownVM})
	steps = append(steps, j.commitSteps()...)
	return append(steps,
		step{name: "cleanup", kind: imagebuild.KindBuilder, message: "removing temporary vm " + j.op, do: j.dropVM},
		j.registerStep())
}

// bootVM creates and boots the temporary VM. A VM that was made but did
// not boot is left stopped by createVM; this step's undo exists only once
// it succeeds, so it removes that VM itself.
func (j *imageJob) bootVM(ctx context.Context, create api.CreateVMRequest) error {
	created, _, err := j.d.createVM(ctx, create, j.sub("vm"))
	if err != nil {
		return errors.Join(err, j.dropVM(ctx))
	}
	j.v = created
	return nil
}

func (j *imageJob) connect(ctx context.Context) error {
	// A build VM that dies while booting ends the wait at once.
	return j.d.whileBooting(ctx, j.v, func(ctx context.Context) error {
		c, err := j.d.deps.Guest.Connect(ctx, j.v)
		j.conn = c
		if err != nil {
			return err
		}
		// Package scripts start services: wait for systemd, which starts
		// after sshd (guest.InitReadyScript).
		var stderr bytes.Buffer
		if err := c.Run(ctx, guest.Command{Line: guest.InitReadyScript, Stderr: &stderr}); err != nil && ctx.Err() == nil {
			j.d.log.Warn("waiting for the build vm's init", "vm", j.v.Name, "err", err, "stderr", stderr.String())
			note(j.sub("connect"), "init", fmt.Sprintf("the build vm answers SSH but its init does not accept commands yet (%v: %s); package scripts that start services may fail; its console log %s says how far it booted",
				err, strings.TrimSpace(stderr.String()), j.v.ConsoleLog()))
		}
		return ctx.Err()
	})
}

func (j *imageJob) disconnect(context.Context) error {
	var err error
	j.closeOnce.Do(func() { err = j.conn.Close() })
	return err
}

// shutdownVM closes the connection and stops the temporary VM.
func (j *imageJob) shutdownVM(ctx context.Context) error {
	_ = j.disconnect(ctx)
	d := j.d
	v, unlock, _, err := d.lockAndLoad(ctx, j.op, vm.OpStop)
	if err != nil {
		return err
	}
	defer unlock()
	if err := d.halt(ctx, v, false, 0, j.sub("stop")); err != nil {
		return err
	}
	j.v = v
	return nil
}

// dropVM removes the temporary VM and everything it holds; a VM that does
// not exist is fine.
func (j *imageJob) dropVM(ctx context.Context) error { return j.d.dropBuildVM(ctx, j.op) }

// dropBuildVM removes a temporary VM and everything it holds; a VM that
// does not exist is fine.
func (d *Daemon) dropBuildVM(ctx context.Context, name string) error {
	err := d.removeVM(context.WithoutCancel(ctx), name, true, nil)
	var ae *api.Error
	if errors.As(err, &ae) && ae.Code == api.CodeNotFound {
		return nil
	}
	return err
}

// reserveImage prepares the making of image name by the operation what:
// it checks the name, the host prerequisites ops, takes the name's lock
// and makes sure no image has it. The caller releases the lock.
func (d *Daemon) reserveImage(ctx context.Context, name, what string, ops ...preflight.Op) (func(), error) {
	if err := image.ValidateName(name); err != nil {
		return nil, api.Errorf(api.CodeInvalid, "%v", err)
	}
	if err := d.preflight(ctx, ops...); err != nil {
		return nil, err
	}
	unlock, err := d.locks.take(imageKey(name), what)
	if err != nil {
		return nil, err
	}
	if _, err := d.store.Image(ctx, name); err == nil {
		unlock()
		return nil, api.Errorf(api.CodeConflict, "image %s already exists", name).
			WithHint("pick another name, or remove it first with `banger image rm %s`", name)
	} else if !errors.Is(err, store.ErrNotFound) {
		unlock()
		return nil, err
	}
	return unlock, nil
}

// packagesStale reports whether img was built from a package file that has
// changed since (see imagebuild.Stale).
func (d *Daemon) packagesStale(img *image.Image) bool {
	if img.PackagesSHA256 == "" {
		return false
	}
	var sc *imagebuild.Sidecar
	if s, err := imagebuild.ReadSidecar(img.Dir); err == nil {
		sc = &s
	}
	return imagebuild.Stale(img, sc, os.ReadFile)
}
