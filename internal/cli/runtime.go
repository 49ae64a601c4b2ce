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

func (app *App) newRuntimeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "runtime",
		Short: "Inspect, install, package and verify the runtime bundle",
		Long: `The runtime bundle is a directory holding a VMM binary, a guest kernel,
initrd and root file system, described by bundle.json with a sha256 for every
file. A source checkout uses ./runtime, an installed banger ../lib/banger
beside its binary; the runtime_bundle config key overrides both.

Local-first: the checked-in runtime-bundle.toml carries no URLs.
  make runtime-bundle
  banger runtime install --manifest build/runtime-bundle.toml
  banger runtime verify`,
	}
	cmd.AddCommand(app.newRuntimeStatusCommand(), app.newRuntimeInstallCommand(), app.newRuntimePackageCommand(), app.newRuntimeVerifyCommand())
	return cmd
}

func (app *App) runtimeLocator() (runtimebundle.Locator, error) {
	cfg, err := app.config()
	if err != nil {
		return runtimebundle.Locator{}, err
	}
	wd, _ := os.Getwd()
	exe, _ := os.Executable()
	return runtimebundle.Locator{Override: cfg.RuntimeBundle, WorkDir: wd, Executable: exe}, nil
}

func (app *App) newRuntimeStatusCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show where the runtime bundle is looked for and what was found",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(cmd, output); err != nil {
				return err
			}
			loc, err := app.runtimeLocator()
			if err != nil {
				return err
			}
			st := runtimebundle.CurrentStatus(loc)
			if output == "json" {
				return writeJSON(app.Stdout, st)
			}
			for _, c := range st.Candidates {
				fmt.Fprintf(app.Stdout, "candidate: %s (%s)\n", c.Dir, c.Source)
			}
			if st.Found == nil {
				fmt.Fprintf(app.Stdout, "no bundle: %s\n", st.Problem)
				return nil
			}
			pairs := []string{"bundle", st.Found.Dir}
			if b := st.Bundle; b != nil {
				pairs = append(pairs, "name", b.Name, "kernel", b.KernelVersion, "vmm", b.VMM, "files", fmt.Sprint(len(b.Files)))
			}
			if r := st.Installed; r != nil {
				pairs = append(pairs, "installed from", r.URL, "sha256", r.SHA256, "installed at", r.InstalledAt.Local().String())
			}
			if st.Problem != "" {
				pairs = append(pairs, "problem", st.Problem)
			}
			return kv(app.Stdout, pairs...)
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func (app *App) newRuntimeInstallCommand() *cobra.Command {
	var manifest, artifact, dest string
	cmd := &cobra.Command{
		Use:   "install --manifest FILE",
		Short: "Fetch, verify and unpack a bundle atomically; a checksum mismatch changes nothing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if manifest == "" {
				return usageError(cmd, "--manifest is required (make runtime-bundle writes build/runtime-bundle.toml)")
			}
			if dest == "" {
				loc, err := app.runtimeLocator()
				if err != nil {
					return err
				}
				cands := loc.Candidates()
				if len(cands) == 0 {
					return usageError(cmd, "no place for the bundle: give --dest")
				}
				dest = cands[0].Dir
			}
			return app.runRuntimeInstall(cmd.Context(), manifest, artifact, dest)
		},
	}
	cmd.Flags().StringVar(&manifest, "manifest", "", "runtime manifest (runtime-bundle.toml) with the artifact's url and sha256")
	cmd.Flags().StringVar(&artifact, "artifact", "", "artifact to install when the manifest lists several")
	cmd.Flags().StringVar(&dest, "dest", "", "bundle directory (default: where banger looks first)")
	return cmd
}

func (app *App) runRuntimeInstall(ctx context.Context, manifest, artifact, dest string) error {
	b, err := runtimebundle.Install(ctx, runtimebundle.Deps{}, runtimebundle.InstallOptions{Manifest: manifest, Artifact: artifact, Dest: dest})
	if err != nil {
		return err
	}
	fmt.Fprintf(app.Stdout, "installed runtime bundle %s (kernel %s, %d files) into %s\n", b.Name, b.KernelVersion, len(b.Files), dest)
	return nil
}

func (app *App) newRuntimePackageCommand() *cobra.Command {
	var out, name string
	cmd := &cobra.Command{
		Use:   "package DIR --output ARCHIVE",
		Short: "Turn a bundle directory into an archive and print its manifest entry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageError(cmd, "--output is required")
			}
			a, err := runtimebundle.Package(cmd.Context(), args[0], out, name)
			if err != nil {
				return err
			}
			text, err := runtimebundle.Manifest{Artifacts: []runtimebundle.Artifact{a}}.Render()
			if err != nil {
				return err
			}
			_, err = app.Stdout.Write(text)
			return err
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "archive to write (.tar.gz)")
	cmd.Flags().StringVar(&name, "name", "", "artifact name (default: the bundle's name)")
	return cmd
}

func (app *App) newRuntimeVerifyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "verify [DIR]",
		Short: "Re-check an installed bundle against the checksums in its bundle.json",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := ""
			if len(args) == 1 {
				dir = args[0]
			} else {
				loc, err := app.runtimeLocator()
				if err != nil {
					return err
				}
				c, err := runtimebundle.Resolve(loc)
				if err != nil {
					return err
				}
				dir = c.Dir
			}
			if err := runtimebundle.Verify(dir); err != nil {
				return err
			}
			fmt.Fprintf(app.Stdout, "runtime bundle %s verified\n", dir)
			return nil
		},
	}
}

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
