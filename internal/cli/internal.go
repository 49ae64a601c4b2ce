package cli

import (
	"github.com/spf13/cobra"
)

func (app *App) newInternalCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "internal",
		Short:  "Plumbing for scripts and manual repair",
		Hidden: true,
	}
	cmd.AddCommand(app.newInternalNATCommand(), app.newInternalRuntimeBundleCommand(), app.newInternalManCommand())
	return cmd
}
