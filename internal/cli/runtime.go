package cli

import (
	"os"

	"github.com/spf13/cobra"

	"banger/internal/runtimebundle"
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

// runtimeLocator says where to look for the runtime bundle: the configured
// runtime_bundle, the working directory and this executable.
func (app *App) runtimeLocator() (runtimebundle.Locator, error) {
	cfg, err := app.config()
	if err != nil {
		return runtimebundle.Locator{}, err
	}
	wd, _ := os.Getwd()
	exe, _ := os.Executable()
	return runtimebundle.Locator{Override: cfg.RuntimeBundle, WorkDir: wd, Executable: exe}, nil
}
