package cli

import (
	"github.com/spf13/cobra"
)

func (app *App) newSystemCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "system",
		Short: "Host integration helpers",
	}
	cmd.AddCommand(app.newSystemSetupCommand(), app.newSystemCheckCommand(), app.newSystemTeardownCommand())
	return cmd
}
