package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"banger/internal/api"
)

func (app *App) newDaemonRestartCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "restart",
		Short: "Restart bangerd (VMs keep running and are adopted)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runDaemonRestart(cmd.Context())
		},
	}
}

func (app *App) runDaemonRestart(ctx context.Context) error {
	cfg, err := app.config()
	if err != nil {
		return err
	}
	c := api.NewClient(cfg.Paths.Socket())
	if err := app.restartDaemon(ctx, c); err != nil {
		return err
	}
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(app.Stdout, "bangerd restarted (pid %d)\n", st.PID)
	return nil
}
