package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

func (app *App) newDaemonStartCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "start",
		Short: "Start bangerd if it is not running",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runDaemonStart(cmd.Context())
		},
	}
}

func (app *App) runDaemonStart(ctx context.Context) error {
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(app.Stdout, "bangerd is running (pid %d, socket %s)\n", st.PID, st.Socket)
	return nil
}
