package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"banger/internal/runtimebundle"
)

func (app *App) newRuntimeVerifyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "verify [DIR]",
		Short: "Re-check an installed bundle against the checksums in its bundle.json",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runRuntimeVerify(cmd.Context(), args)
		},
	}
}

// runRuntimeVerify checks the bundle in the directory given, or else the
// one banger would use.
func (app *App) runRuntimeVerify(_ context.Context, args []string) error {
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
}
