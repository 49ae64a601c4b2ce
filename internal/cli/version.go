package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"banger/internal/api"
	"banger/internal/buildinfo"
)

func (app *App) newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print banger's version, and the daemon's when it runs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runVersion(cmd.Context())
		},
	}
}

func (app *App) runVersion(ctx context.Context) error {
	fmt.Fprintf(app.Stdout, "banger %s\n", buildinfo.String())
	cfg, err := app.config()
	if err != nil {
		return nil
	}
	// Ask a running daemon only; version never starts one.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if st, err := api.NewClient(cfg.Paths.Socket()).Status(ctx); err == nil {
		fmt.Fprintf(app.Stdout, "bangerd %s (pid %d)\n", st.Version, st.PID)
	}
	return nil
}
