package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
)

func (app *App) newDaemonLogsCommand() *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs",
		Short: "Print the daemon's log (JSON lines)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runDaemonLogs(cmd.Context(), follow)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines")
	return cmd
}

// runDaemonLogs reads the log file directly, so it works when the daemon
// does not start.
func (app *App) runDaemonLogs(ctx context.Context, follow bool) error {
	cfg, err := app.config()
	if err != nil {
		return err
	}
	path := cfg.Paths.DaemonLog()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading daemon log: %s does not exist yet (bangerd has not run for this user)", path)
	} else if err != nil {
		return fmt.Errorf("reading daemon log: %w", err)
	}
	defer f.Close()
	for {
		if _, err := io.Copy(app.Stdout, f); err != nil {
			return err
		}
		if !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}
