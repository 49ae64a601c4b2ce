package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"banger/internal/api"
	"banger/internal/archive"
	"banger/internal/vm"
)

func (app *App) newVMCpCommand() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "cp SRC DST",
		Short: "Copy files and directories between the host and a VM (NAME:PATH on one side)",
		Long: `Copy a file or a directory tree between the host and a VM, as docker cp
does; the VM side is written NAME:PATH. Modes, symlinks (as links), hard
links, empty directories and modification times are kept, sparse files stay
sparse, and the data is streamed (tar through the daemon's exec stream).

Naming: into an existing directory the source keeps its name (SRC/. copies
the contents instead), a destination that does not exist becomes the copy
(its parent must exist), a file replaces a file.

Copying from a VM never writes outside DST on the host, whatever the guest
sends: names with .., absolute names, symlinks leading out and hard links to
files outside are refused and the copy stops there; setuid and setgid bits
are dropped, devices and FIFOs are skipped. Files copied into a VM belong to
root there.`,
		Example: `  banger vm cp ./src dev:/work/        # ./src becomes /work/src
  banger vm cp dev:/var/log/syslog .    # into the current directory
  banger vm cp dev:/work/out/. ./out    # the contents of /work/out`,
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: app.completeVMNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runVMCp(cmd.Context(), cmd, args[0], args[1], timeout)
		},
	}
	cmd.Flags().DurationVar(&timeout, "wait-timeout", 3*time.Minute, "how long to wait for a VM that is still booting")
	return cmd
}

// guestPath splits "NAME:PATH" into the VM and the path; ok is false for a
// host path (write ./a:b for a host path with a colon).
func guestPath(s string) (name, path string, ok bool) {
	name, path, ok = strings.Cut(s, ":")
	if !ok || strings.Contains(name, "/") || vm.ValidateName(name) != nil {
		return "", "", false
	}
	return name, path, true
}

func (app *App) runVMCp(ctx context.Context, cmd *cobra.Command, src, dst string, timeout time.Duration) error {
	srcVM, srcPath, fromVM := guestPath(src)
	dstVM, dstPath, toVM := guestPath(dst)
	switch {
	case fromVM == toVM:
		return usageError(cmd, "one side of the copy must be a VM path (NAME:PATH) and the other a host path")
	case fromVM && srcPath == "", toVM && dstPath == "":
		return usageError(cmd, "the VM path after NAME: is empty; write NAME:/path")
	}
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	x := &guestCopy{c: c, wait: int(timeout.Round(time.Second) / time.Second)}
	if fromVM {
		return x.download(ctx, srcVM, srcPath, dst)
	}
	return x.upload(ctx, src, dstVM, dstPath)
}

// guestCopy runs the guest's side of a copy through the exec stream.
type guestCopy struct {
	c    *api.Client
	wait int
}

// run runs argv in the guest and fails with its stderr when it fails.
func (x *guestCopy) run(ctx context.Context, name string, argv []string, stdin io.Reader, stdout io.Writer) error {
	var stderr bytes.Buffer
	code, err := x.c.Exec(ctx, name, api.ExecRequest{Argv: argv, WaitSeconds: x.wait}, api.ExecIO{Stdin: stdin, Stdout: stdout, Stderr: &stderr})
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("%s in vm %s exited with status %d: %s", argv[0], name, code, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// download streams the guest's tar of src into the host path dst.
func (x *guestCopy) download(ctx context.Context, name, src, dst string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	extracted := make(chan error, 1)
	go func() {
		_, err := archive.Extract(pr, dst)
		// Stop the guest's tar when the host side gave up.
		pr.CloseWithError(err)
		if err != nil {
			cancel()
		}
		extracted <- err
	}()
	err := x.run(ctx, name, archive.CreateArgv(src), nil, pw)
	pw.CloseWithError(err)
	if xerr := <-extracted; xerr != nil {
		return fmt.Errorf("copying %s:%s to %s: %w", name, src, dst, xerr)
	}
	if err != nil {
		return fmt.Errorf("copying %s:%s to %s: %w", name, src, dst, err)
	}
	return nil
}

// upload streams a tar of the host path src into the guest at dst.
func (x *guestCopy) upload(ctx context.Context, src, name, dst string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	var probe bytes.Buffer
	if err := x.run(ctx, name, archive.ProbeArgv(dst), nil, &probe); err != nil {
		return fmt.Errorf("looking at %s:%s: %w", name, dst, err)
	}
	kind, err := archive.ParseProbe(probe.Bytes())
	if err != nil {
		return err
	}
	plan, err := archive.PlanUpload(src, fi.IsDir(), dst, kind)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	written := make(chan error, 1)
	go func() {
		err := archive.Write(pw, src, plan.Name, archive.WriteOptions{})
		pw.CloseWithError(err)
		written <- err
	}()
	err = x.run(ctx, name, archive.ExtractArgv(plan.Dir), pr, io.Discard)
	pr.CloseWithError(errors.New("the copy ended"))
	if werr := <-written; werr != nil && !errors.Is(werr, io.ErrClosedPipe) {
		// The host side's failure explains the guest's.
		err = werr
	}
	if err != nil {
		return fmt.Errorf("copying %s to %s:%s: %w", src, name, dst, err)
	}
	return nil
}
