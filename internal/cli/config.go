package cli

import (
	"github.com/spf13/cobra"
)

func (app *App) newConfigCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show banger's configuration",
	}
	cmd.AddCommand(app.newConfigShowCommand())
	return cmd
}
