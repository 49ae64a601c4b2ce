package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"banger/internal/api"
)

func (app *App) newDaemonStopCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "stop",
		Short: "Stop bangerd (VMs keep running)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runDaemonStop(cmd.Context())
		},
	}
}

func (app *App) runDaemonStop(ctx context.Context) error {
	cfg, err := app.config()
	if err != nil {
		return err
	}
	c := api.NewClient(cfg.Paths.Socket())
	pid := 0
	if st, err := c.Status(ctx); err == nil {
		pid = st.PID
	}
	if err := c.Shutdown(ctx); err != nil {
		if api.IsDialError(err) {
			fmt.Fprintln(app.Stdout, "bangerd is not running")
			return nil
		}
		return err
	}
	if err := waitGone(ctx, c, pid); err != nil {
		return err
	}
	fmt.Fprintln(app.Stdout, "bangerd stopped; running VMs were left running")
	return nil
}
