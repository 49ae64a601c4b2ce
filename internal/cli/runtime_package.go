package cli

import (
	"context"

	"github.com/spf13/cobra"

	"banger/internal/runtimebundle"
)

type runtimePackageOptions struct {
	output, name string
}

func (app *App) newRuntimePackageCommand() *cobra.Command {
	var o runtimePackageOptions
	cmd := &cobra.Command{
		Use:   "package DIR --output ARCHIVE",
		Short: "Turn a bundle directory into an archive and print its manifest entry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runRuntimePackage(cmd.Context(), cmd, args[0], o)
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "archive to write (.tar.gz)")
	cmd.Flags().StringVar(&o.name, "name", "", "artifact name (default: the bundle's name)")
	return cmd
}

func (app *App) runRuntimePackage(ctx context.Context, cmd *cobra.Command, dir string, o runtimePackageOptions) error {
	if o.output == "" {
		return usageError(cmd, "--output is required")
	}
	a, err := runtimebundle.Package(ctx, dir, o.output, o.name)
	if err != nil {
		return err
	}
	text, err := runtimebundle.Manifest{Artifacts: []runtimebundle.Artifact{a}}.Render()
	if err != nil {
		return err
	}
	_, err = app.Stdout.Write(text)
	return err
}
