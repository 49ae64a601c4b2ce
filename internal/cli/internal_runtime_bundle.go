package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"banger/internal/api"
	"banger/internal/runtimebundle"
)

// newInternalRuntimeBundleCommand is `make runtime-bundle`: bootstrap the
// default image (cached), assemble a bundle directory from it and the VMM,
// package it, and write a local manifest copy with url and sha256.
func (app *App) newInternalRuntimeBundleCommand() *cobra.Command {
	var dir, build, vmm string
	cmd := &cobra.Command{
		Use:   "runtime-bundle",
		Short: "Build ./runtime and build/runtime-bundle.toml from a bootstrapped image",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runInternalRuntimeBundle(cmd.Context(), dir, build, vmm)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "runtime", "bundle directory to (re)create")
	cmd.Flags().StringVar(&build, "build", "build", "directory for the archive and the local manifest")
	cmd.Flags().StringVar(&vmm, "vmm", "", "VMM binary to include (default: banger-vmm-qemu beside banger)")
	return cmd
}

func (app *App) runInternalRuntimeBundle(ctx context.Context, dir, build, vmm string) error {
	if vmm == "" {
		exe, _ := os.Executable()
		vmm = filepath.Join(filepath.Dir(exe), "banger-vmm-qemu")
	}
	b, err := app.assembleBundle(ctx, dir, vmm)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(build, 0o755); err != nil {
		return err
	}
	archive, err := filepath.Abs(filepath.Join(build, "banger-runtime.tar.gz"))
	if err != nil {
		return err
	}
	a, err := runtimebundle.Package(ctx, dir, archive, b.Name)
	if err != nil {
		return err
	}
	text, err := runtimebundle.Manifest{Artifacts: []runtimebundle.Artifact{a}}.Render()
	if err != nil {
		return err
	}
	manifest := filepath.Join(build, "runtime-bundle.toml")
	if err := os.WriteFile(manifest, text, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(app.Stdout, "bundle %s in %s\narchive %s (sha256 %s)\nmanifest %s\ninstall with: banger runtime install --manifest %s\n", b.Name, dir, archive, a.SHA256, manifest, manifest)
	return nil
}

// assembleBundle has the daemon bootstrap the default image (its cache
// makes a repeat quick) as a temporary image, assembles the bundle
// directory from that image's files and the VMM, and removes the image.
func (app *App) assembleBundle(ctx context.Context, dir, vmm string) (runtimebundle.Bundle, error) {
	c, err := app.connect(ctx)
	if err != nil {
		return runtimebundle.Bundle{}, err
	}
	var id [4]byte
	_, _ = rand.Read(id[:])
	name := "runtime-bundle-" + hex.EncodeToString(id[:])
	pr := newProgress(app.Stderr)
	img, err := c.BootstrapImage(ctx, api.BootstrapImageRequest{Name: name}, pr.Update)
	pr.Done()
	if err != nil {
		return runtimebundle.Bundle{}, err
	}
	defer func() {
		if err := c.RemoveImage(context.WithoutCancel(ctx), name); err != nil {
			fmt.Fprintf(app.Stderr, "banger: removing the temporary image %s: %v (remove it with `banger image rm %s`)\n", name, err, name)
		}
	}()
	if err := os.RemoveAll(dir); err != nil {
		return runtimebundle.Bundle{}, fmt.Errorf("clearing %s: %w", dir, err)
	}
	return runtimebundle.Assemble(ctx, dir, runtimebundle.AssembleInput{
		Name: "banger-runtime", KernelVersion: img.KernelVersion, Kernel: img.Kernel, Vmlinux: img.Vmlinux,
		Initrd: img.Initrd, Rootfs: img.Rootfs, Manifest: img.Manifest, VMM: vmm,
	})
}
