package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"banger/internal/api"
	"banger/internal/image"
	"banger/internal/imagebuild"
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
		var se *StepError
		if errors.As(err, &se) {
			err = se.APIError()
		}
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
	if err := errors.Join(errs...); err != nil {
		return p, api.Errorf(api.CodeInvalid, "image build: %v", err)
	}
	return p, nil
}

// imageJob is one build or commit in progress: its names, directories, log
// and plan of undoable steps.
type imageJob struct {
	d       *Daemon
	id      string
	op      string // "build-<id>" or "commit-<id>": lock key and temporary VM name
	name    string // the new image
	stage   string // images/.<op>, renamed to dir when complete
	dir     string // images/<name>-<id>
	logPath string // the build log while the job runs, and after a failure
	logFile *os.File
	log     *imagebuild.Log
	p       *plan
	start   time.Time
	unlock  func()
}

func (d *Daemon) newImageJob(kind, name string, progress func(api.Progress)) (*imageJob, error) {
	id := newID()
	j := &imageJob{d: d, id: id, op: kind + "-" + id, name: name, start: time.Now()}
	images := d.cfg.Paths.ImagesDir()
	j.stage = filepath.Join(images, "."+j.op)
	j.dir = filepath.Join(images, name+"-"+id)
	logs := filepath.Join(d.cfg.Paths.StateDir, "builds")
	for _, dir := range []string{images, logs} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("creating %s: %w", dir, err)
		}
	}
	unlock, err := d.lockVM(buildKey(j.op), "image "+kind+" "+name)
	if err != nil {
		return nil, err
	}
	j.unlock = unlock
	j.logPath = filepath.Join(logs, name+"-"+id+".log")
	f, err := os.OpenFile(j.logPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		unlock()
		return nil, fmt.Errorf("creating build log: %w", err)
	}
	j.logFile = f
	j.log = imagebuild.NewLog(f, nil, func(step, msg string) {
		progress(api.Progress{Step: step, Message: msg})
	})
	j.p = &plan{op: "image " + kind, vm: name, log: d.log, progress: func(pr api.Progress) {
		progress(pr)
		d.events.publish(api.Event{Type: api.EventImageBuild, Name: name, Progress: &pr})
	}, logs: []string{j.logPath, d.cfg.Paths.DaemonLog()}}
	progress(api.Progress{Step: "log", Message: "build log: " + j.logPath})
	return j, nil
}

// step runs one step through the plan and records it in the build log.
func (j *imageJob) step(ctx context.Context, name, kind, message string, fn, undo func(context.Context) error) error {
	j.log.Begin(name, kind, message)
	start := time.Now()
	err := j.p.do(ctx, name, message, fn, undo)
	j.log.End(name, kind, time.Since(start), err)
	return err
}

// sub forwards the progress of a nested lifecycle operation (vm create,
// vm stop) to the client and the build log, as steps named prefix/step.
// The VMM boot is the only part whose time is the guest's.
func (j *imageJob) sub(prefix string) func(api.Progress) {
	return func(pr api.Progress) {
		step := prefix + "/" + pr.Step
		kind := imagebuild.KindBuilder
		if prefix == "vm" && pr.Step == "boot" {
			kind = imagebuild.KindBoot
		}
		if pr.Finished {
			j.log.End(step, kind, time.Duration(pr.Seconds*float64(time.Second)), nil)
		} else {
			j.log.Printf("%s: %s", step, pr.Message)
		}
		j.p.emit(api.Progress{Step: step, Message: pr.Message, Finished: pr.Finished, Seconds: pr.Seconds})
	}
}

// finish ends the job: on success the log moves into the image directory
// (where BuildLog points); on failure it stays where the error says.
func (j *imageJob) finish(err error) {
	j.log.End("build", imagebuild.KindTotal, time.Since(j.start), err)
	j.logFile.Close()
	if err == nil {
		dst := filepath.Join(j.dir, imagebuild.BuildLogFile)
		if rerr := os.Rename(j.logPath, dst); rerr != nil {
			if cerr := copyFile(j.logPath, dst); cerr != nil {
				j.d.log.Warn("keeping the build log with the image", "image", j.name, "log", j.logPath, "err", cerr)
			} else {
				os.Remove(j.logPath)
			}
		}
	}
	j.unlock()
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

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

// checkNewImage fails when an image called name exists.
func (d *Daemon) checkNewImage(ctx context.Context, name string) error {
	if _, err := d.store.Image(ctx, name); err == nil {
		return api.Errorf(api.CodeConflict, "image %s already exists", name).
			WithHint("pick another name, or remove it first with `banger image rm %s`", name)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
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
	if d.deps.Guest == nil {
		return nil, api.Errorf(api.CodePrecondition, "cannot build images: this bangerd was built without the guest layer")
	}
	if err := d.preflight(ctx, "vm start"); err != nil {
		return nil, err
	}
	unlock, err := d.lockVM("image/"+req.Name, "build")
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := d.checkNewImage(ctx, req.Name); err != nil {
		return nil, err
	}
	base, err := d.store.Image(ctx, req.Base)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFoundImage(req.Base)
	} else if err != nil {
		return nil, err
	}
	if req.SizeBytes != 0 && req.SizeBytes < base.SizeBytes {
		return nil, api.Errorf(api.CodeInvalid, "--size %s is smaller than image %s's %s root file system; images can only grow", vm.FormatSize(req.SizeBytes), base.Name, vm.FormatSize(base.SizeBytes))
	}
	bp.KernelVersion = base.KernelVersion
	steps, err := imagebuild.Steps(bp)
	if err != nil {
		return nil, api.Errorf(api.CodeInvalid, "%v", err)
	}

	j, err := d.newImageJob("build", req.Name, progress)
	if err != nil {
		return nil, err
	}
	j.log.Printf("building image %s from %s: %d copies, packages from %s (%d names, %d local files, sha256 %s), modules %v, %d scripts",
		req.Name, base.Name, len(bp.Copies), packagesSource(bp.Packages), len(bp.Packages.Names), len(bp.Packages.Debs), bp.Packages.SHA256, bp.Modules, len(bp.Scripts))
	d.log.Info("building image", "image", req.Name, "base", base.Name, "vm", j.op, "log", j.logPath)
	img, err := j.build(ctx, req, &base, bp, steps)
	if err != nil {
		err = d.abort(j.p, err)
		d.log.Error("building image failed", "image", req.Name, "log", j.logPath, "err", err)
		j.finish(err)
		return nil, err
	}
	j.p.commit()
	j.finish(nil)
	d.log.Info("image registered", "image", img.Name, "dir", img.Dir)
	d.events.publish(api.Event{Type: api.EventImageAdded, Name: img.Name, Image: d.imageToAPI(img, 0)})
	return img, nil
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

func (j *imageJob) build(ctx context.Context, req api.BuildImageRequest, base *image.Image, bp imagebuild.Plan, steps []imagebuild.Step) (*image.Image, error) {
	d := j.d
	create := api.CreateVMRequest{Name: j.op, Image: base.Name, Hidden: true, CPUs: req.CPUs, MemoryMiB: req.MemoryMiB, DiskBytes: buildWorkDisk}
	if req.SizeBytes > base.SizeBytes {
		create.RootBytes = req.SizeBytes
	}
	var v *vm.VM
	err := j.step(ctx, "vm", imagebuild.KindBuilder, "booting temporary vm "+j.op+" from image "+base.Name, func(ctx context.Context) error {
		created, _, err := d.createVM(ctx, create, j.sub("vm"))
		if err != nil {
			// A VM that was made but did not boot is left stopped by
			// createVM; this step's undo exists only once it succeeds.
			if derr := d.dropBuildVM(ctx, j.op); derr != nil {
				err = errors.Join(err, derr)
			}
			return err
		}
		v = created
		return nil
	}, func(ctx context.Context) error { return d.dropBuildVM(ctx, j.op) })
	if err != nil {
		return nil, err
	}

	var conn GuestConn
	var closeOnce sync.Once
	closeConn := func(context.Context) error {
		var err error
		closeOnce.Do(func() { err = conn.Close() })
		return err
	}
	err = j.step(ctx, "connect", imagebuild.KindBoot, "waiting for ssh on "+v.IP, func(ctx context.Context) error {
		c, err := d.deps.Guest.Connect(ctx, v)
		conn = c
		return err
	}, closeConn)
	if err != nil {
		return nil, err
	}
	for _, s := range steps {
		s := s
		if err := j.step(ctx, s.Name, s.Kind, s.Message, func(ctx context.Context) error {
			return s.Run(ctx, conn, j.log)
		}, nil); err != nil {
			return nil, err
		}
	}
	_ = closeConn(ctx)

	err = j.step(ctx, "shutdown", imagebuild.KindShutdown, "shutting the guest down", func(ctx context.Context) error {
		unlock, err := d.lockVM(j.op, "image build")
		if err != nil {
			return err
		}
		defer unlock()
		cur, err := d.loadVM(ctx, j.op)
		if err != nil {
			return err
		}
		if err := d.stopLocked(ctx, cur, false, 0, j.sub("stop")); err != nil {
			return err
		}
		v = cur
		return nil
	}, nil)
	if err != nil {
		return nil, err
	}

	img, err := j.commit(ctx, v, base, true, imagebuild.Sidecar{
		Name: j.name, Source: image.FromBuild, Base: base.Name,
		PackagesFile: bp.Packages.Source, PackagesSHA256: bp.Packages.SHA256,
	})
	if err != nil {
		return nil, err
	}
	// The temporary VM goes before the image is registered, so a
	// registered image never has a build VM left behind.
	if err := j.step(ctx, "cleanup", imagebuild.KindBuilder, "removing temporary vm "+j.op, func(ctx context.Context) error {
		return d.dropBuildVM(ctx, j.op)
	}, nil); err != nil {
		return nil, err
	}
	if err := j.register(ctx, img); err != nil {
		return nil, err
	}
	return img, nil
}

// commit turns v's stopped root disk into the job's staged image: checked,
// moved or cloned, scrubbed, with the base's kernel files and a sidecar.
func (j *imageJob) commit(ctx context.Context, v *vm.VM, base *image.Image, move bool, sc imagebuild.Sidecar) (*image.Image, error) {
	d := j.d
	var status []byte
	err := j.step(ctx, "commit", imagebuild.KindBuilder, "checking, taking and scrubbing the root disk of "+v.Name, func(ctx context.Context) error {
		if err := os.Mkdir(j.stage, 0o755); err != nil {
			return fmt.Errorf("staging image: %w", err)
		}
		var err error
		status, err = d.deps.Disks.CommitRoot(ctx, v, filepath.Join(j.stage, imagebuild.RootfsFile), move)
		if err != nil {
			os.RemoveAll(j.stage)
		}
		return err
	}, func(context.Context) error { return os.RemoveAll(j.stage) })
	if err != nil {
		return nil, err
	}
	var img image.Image
	sc.BuildLog = filepath.Join(j.dir, imagebuild.BuildLogFile)
	err = j.step(ctx, "assemble", imagebuild.KindBuilder, "linking the kernel and writing the package manifest", func(ctx context.Context) error {
		var err error
		img, err = imagebuild.Assemble(ctx, imagebuild.Assembly{Stage: j.stage, Dir: j.dir, Base: base, DpkgStatus: status, Sidecar: sc, Now: d.deps.Now()})
		if err == nil {
			j.log.Printf("image %s: %d bytes root file system, manifest sha256 %s", img.Name, img.SizeBytes, img.ManifestSHA256)
		}
		return err
	}, nil)
	if err != nil {
		return nil, err
	}
	img.ID = "img-" + j.id
	return &img, nil
}

// register moves the staged image into place and records it.
func (j *imageJob) register(ctx context.Context, img *image.Image) error {
	d := j.d
	return j.step(ctx, "register", imagebuild.KindBuilder, "registering image "+img.Name, func(ctx context.Context) error {
		if err := os.Rename(j.stage, j.dir); err != nil {
			return fmt.Errorf("moving image into %s: %w", j.dir, err)
		}
		if err := d.store.CreateImage(context.WithoutCancel(ctx), img); err != nil {
			os.RemoveAll(j.dir)
			return err
		}
		return nil
	}, func(ctx context.Context) error {
		return errors.Join(d.store.DeleteImage(ctx, img.ID), os.RemoveAll(j.dir))
	})
}

// commitImage turns a stopped VM's root disk into a new image (the VM keeps
// its disk): for customising an image by hand.
func (d *Daemon) commitImage(ctx context.Context, req api.CommitImageRequest, progress func(api.Progress)) (*image.Image, error) {
	if err := image.ValidateName(req.Name); err != nil {
		return nil, api.Errorf(api.CodeInvalid, "%v", err)
	}
	if err := d.preflight(ctx, "vm create"); err != nil {
		return nil, err
	}
	unlock, err := d.lockVM("image/"+req.Name, "commit")
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := d.checkNewImage(ctx, req.Name); err != nil {
		return nil, err
	}
	unlockVM, err := d.lockVM(req.VM, "commit")
	if err != nil {
		return nil, err
	}
	defer unlockVM()
	v, err := d.loadVM(ctx, req.VM)
	if err != nil {
		return nil, err
	}
	if v.Hidden {
		return nil, api.Errorf(api.CodeConflict, "vm %s is a temporary build vm", v.Name)
	}
	if v.State != vm.Stopped {
		return nil, api.Errorf(api.CodeConflict, "vm %s is %s; only a stopped vm's root disk can become an image", v.Name, v.State).
			WithHint("stop it first: `banger vm stop %s`", v.Name)
	}
	base, err := d.store.Image(ctx, v.ImageName)
	if err != nil {
		return nil, fmt.Errorf("reading image %s of vm %s: %w", v.ImageName, v.Name, err)
	}
	j, err := d.newImageJob("commit", req.Name, progress)
	if err != nil {
		return nil, err
	}
	j.log.Printf("committing the root disk of vm %s (image %s) as image %s", v.Name, base.Name, req.Name)
	// The image inherits what its base was built from: the VM started as
	// that image, so it goes stale with the same package file.
	sc := imagebuild.Sidecar{Name: req.Name, Source: image.FromCommit, Base: base.Name, VM: v.Name, PackagesSHA256: base.PackagesSHA256}
	if bs, err := imagebuild.ReadSidecar(base.Dir); err == nil {
		sc.PackagesFile = bs.PackagesFile
	}
	img, err := j.commit(ctx, v, &base, false, sc)
	if err == nil {
		err = j.register(ctx, img)
	}
	if err != nil {
		err = d.abort(j.p, err)
		j.finish(err)
		return nil, err
	}
	j.p.commit()
	j.finish(nil)
	d.log.Info("image registered", "image", img.Name, "vm", v.Name, "dir", img.Dir)
	d.events.publish(api.Event{Type: api.EventImageAdded, Name: img.Name, Image: d.imageToAPI(img, 0)})
	return img, nil
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
