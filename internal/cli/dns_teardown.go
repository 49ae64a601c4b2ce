package cli

import (
	"github.com/spf13/cobra"
)

func (app *App) newDNSTeardownCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "teardown",
		Short: "Undo dns setup",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runDNSSetup(cmd.Context(), true)
		},
	}
}
