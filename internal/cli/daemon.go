package cli

import (
	"github.com/spf13/cobra"
)

func (app *App) newDaemonCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Inspect and control bangerd, your per-user daemon",
		Long: `bangerd owns banger's state and every VM. The CLI starts it when needed and
restarts it when its binary was rebuilt. Stopping or restarting the daemon
never stops a VM: VMMs run in their own sessions and the next daemon adopts
them.`,
	}
	cmd.AddCommand(
		app.newDaemonStatusCommand(),
		app.newDaemonStartCommand(),
		app.newDaemonStopCommand(),
		app.newDaemonRestartCommand(),
		app.newDaemonLogsCommand(),
	)
	return cmd
}
