package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"banger/internal/api"
	"banger/internal/bootstrap"
	"banger/internal/runtimebundle"
	"banger/internal/system"
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
	cfg, err := app.config()
	if err != nil {
		return err
	}
	if vmm == "" {
		exe, _ := os.Executable()
		vmm = filepath.Join(filepath.Dir(exe), "banger-vmm-qemu")
	}
	pr := newProgress(app.Stderr)
	res, err := bootstrapForBundle(ctx, filepath.Join(cfg.Paths.CacheDir, "bootstrap"), pr)
	pr.Done()
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clearing %s: %w", dir, err)
	}
	b, err := runtimebundle.Assemble(ctx, dir, runtimebundle.FromImage(res, vmm))
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

// bootstrapForBundle builds (or reuses from the cache) the default image
// for a runtime bundle, in this process: bundling is a build step, not a
// daemon operation.
func bootstrapForBundle(ctx context.Context, cacheDir string, pr *progress) (bootstrap.Result, error) {
	return bootstrap.Build(ctx, bootstrap.Deps{Runner: system.Privileged(), Log: slog.New(slog.DiscardHandler)},
		bootstrap.Options{Name: "banger-runtime", CacheDir: cacheDir},
		func(p bootstrap.Progress) { pr.Update(api.Progress{Step: string(p.Step), Message: p.Message}) })
}
