package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"banger/internal/api"
	"banger/internal/image"
	"banger/internal/imagebuild"
	"banger/internal/vm"
)

// imageJob is one build or commit in progress: its names, directories,
// build log, and what its steps make.
type imageJob struct {
	d        *Daemon
	id       string
	kind     string // "build" or "commit"
	op       string // "build-<id>" or "commit-<id>": lock key and temporary VM name
	name     string // the new image
	stage    string // images/.<op>, renamed to dir when complete
	dir      string // images/<name>-<id>
	logPath  string // the build log while the job runs, and after a failure
	logFile  *os.File
	log      *imagebuild.Log
	progress func(api.Progress)
	start    time.Time
	unlock   func()

	base      *image.Image
	sidecar   imagebuild.Sidecar
	move      bool   // take the VM's root disk instead of cloning it
	v         *vm.VM // the VM whose root disk becomes the image
	conn      GuestConn
	closeOnce sync.Once
	status    []byte // the disk's dpkg status
	img       *image.Image
}

func (d *Daemon) newImageJob(kind, name string, progress func(api.Progress)) (*imageJob, error) {
	id := newID()
	j := &imageJob{d: d, id: id, kind: kind, op: kind + "-" + id, name: name, start: time.Now()}
	images := d.cfg.Paths.ImagesDir()
	j.stage = filepath.Join(images, "."+j.op)
	j.dir = filepath.Join(images, name+"-"+id)
	logs := buildLogDir(d.cfg.Paths)
	for _, dir := range []string{images, logs} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("creating %s: %w", dir, err)
		}
	}
	unlock, err := d.locks.take(buildKey(j.op), "image "+kind+" "+name)
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
	j.progress = func(pr api.Progress) {
		progress(pr)
		d.events.publish(api.Event{Type: api.EventImageBuild, Name: name, Progress: &pr})
	}
	progress(api.Progress{Step: "log", Message: "build log: " + j.logPath})
	return j, nil
}

// run runs the job's steps and ends the job: the image is registered and
// announced, or everything the steps made is undone.
func (j *imageJob) run(ctx context.Context, steps []step) (*image.Image, error) {
	d := j.d
	err := d.run(ctx, operation{name: "image " + j.kind, target: j.name, steps: steps, watch: j,
		logs: []string{j.logPath, d.cfg.Paths.DaemonLog()}}, j.progress)
	j.finish(err)
	if err != nil {
		d.log.Error("making image failed", "op", j.kind, "image", j.name, "log", j.logPath, "err", err)
		return nil, err
	}
	d.log.Info("image registered", "image", j.img.Name, "dir", j.img.Dir)
	d.events.publish(api.Event{Type: api.EventImageAdded, Name: j.img.Name, Image: d.imageToAPI(j.img, 0)})
	return j.img, nil
}

// begin and end write each step into the build log.
func (j *imageJob) begin(s *step) { j.log.Begin(s.name, stepKind(s), s.message) }

func (j *imageJob) end(s *step, took time.Duration, err error) {
	j.log.End(s.name, stepKind(s), took, err)
}

func stepKind(s *step) string {
	if s.kind == "" {
		return imagebuild.KindBuilder
	}
	return s.kind
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
		j.progress(api.Progress{Step: step, Message: pr.Message, Finished: pr.Finished, Seconds: pr.Seconds})
	}
}

// commitSteps declare what build and commit share: take the stopped VM's
// root disk (checked, moved or cloned, scrubbed) into the stage, and
// assemble the image with the base's kernel files and a sidecar.
func (j *imageJob) commitSteps() []step {
	return []step{
		{name: "commit", message: "checking, taking and scrubbing the root disk", do: j.takeRoot, undo: j.removeStage},
		{name: "assemble", message: "linking the kernel and writing the package manifest", do: j.assemble},
	}
}

func (j *imageJob) takeRoot(ctx context.Context) error {
	if err := os.Mkdir(j.stage, 0o755); err != nil {
		return fmt.Errorf("staging image: %w", err)
	}
	var err error
	j.status, err = j.d.deps.Disks.CommitRoot(ctx, j.v, filepath.Join(j.stage, imagebuild.RootfsFile), j.move)
	if err != nil {
		os.RemoveAll(j.stage)
	}
	return err
}

func (j *imageJob) removeStage(context.Context) error { return os.RemoveAll(j.stage) }

func (j *imageJob) assemble(ctx context.Context) error {
	sc := j.sidecar
	sc.BuildLog = filepath.Join(j.dir, imagebuild.BuildLogFile)
	img, err := imagebuild.Assemble(ctx, imagebuild.Assembly{Stage: j.stage, Dir: j.dir, Base: j.base, DpkgStatus: j.status, Sidecar: sc, Now: j.d.deps.Now()})
	if err != nil {
		return err
	}
	j.log.Printf("image %s: %d bytes root file system, manifest sha256 %s", img.Name, img.SizeBytes, img.ManifestSHA256)
	img.ID = "img-" + j.id
	j.img = &img
	return nil
}

// registerStep moves the staged image into place and records it.
func (j *imageJob) registerStep() step {
	return step{name: "register", message: "registering image " + j.name, do: j.register, undo: j.unregister}
}

func (j *imageJob) register(ctx context.Context) error {
	if err := os.Rename(j.stage, j.dir); err != nil {
		return fmt.Errorf("moving image into %s: %w", j.dir, err)
	}
	if err := j.d.store.CreateImage(context.WithoutCancel(ctx), j.img); err != nil {
		os.RemoveAll(j.dir)
		return err
	}
	return nil
}

func (j *imageJob) unregister(ctx context.Context) error {
	return errors.Join(j.d.store.DeleteImage(ctx, j.img.ID), os.RemoveAll(j.dir))
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
