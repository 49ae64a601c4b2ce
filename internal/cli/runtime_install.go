package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"banger/internal/runtimebundle"
)

type runtimeInstallOptions struct {
	manifest, artifact, dest string
}

func (app *App) newRuntimeInstallCommand() *cobra.Command {
	var o runtimeInstallOptions
	cmd := &cobra.Command{
		Use:   "install --manifest FILE",
		Short: "Fetch, verify and unpack a bundle atomically; a checksum mismatch changes nothing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runRuntimeInstall(cmd.Context(), cmd, o)
		},
	}
	cmd.Flags().StringVar(&o.manifest, "manifest", "", "runtime manifest (runtime-bundle.toml) with the artifact's url and sha256")
	cmd.Flags().StringVar(&o.artifact, "artifact", "", "artifact to install when the manifest lists several")
	cmd.Flags().StringVar(&o.dest, "dest", "", "bundle directory (default: where banger looks first)")
	return cmd
}

func (app *App) runRuntimeInstall(ctx context.Context, cmd *cobra.Command, o runtimeInstallOptions) error {
	if o.manifest == "" {
		return usageError(cmd, "--manifest is required (make runtime-bundle writes build/runtime-bundle.toml)")
	}
	if o.dest == "" {
		loc, err := app.runtimeLocator()
		if err != nil {
			return err
		}
		cands := loc.Candidates()
		if len(cands) == 0 {
			return usageError(cmd, "no place for the bundle: give --dest")
		}
		o.dest = cands[0].Dir
	}
	b, err := runtimebundle.Install(ctx, runtimebundle.Deps{}, runtimebundle.InstallOptions{Manifest: o.manifest, Artifact: o.artifact, Dest: o.dest})
	if err != nil {
		return err
	}
	fmt.Fprintf(app.Stdout, "installed runtime bundle %s (kernel %s, %d files) into %s\n", b.Name, b.KernelVersion, len(b.Files), o.dest)
	return nil
}
