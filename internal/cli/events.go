package cli

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"banger/internal/api"
)

func (app *App) newEventsCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Stream state changes (VMs created, started, stopped, removed, images added…)",
		Long: `Stream the daemon's state changes until interrupted. With -o json each event
is one JSON object per line, for scripts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runEvents(cmd.Context(), cmd, output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

func (app *App) runEvents(ctx context.Context, cmd *cobra.Command, output string) error {
	if err := checkOutput(cmd, output); err != nil {
		return err
	}
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(app.Stdout)
	return c.Events(ctx, func(ev api.Event) error {
		if output == "json" {
			return enc.Encode(ev)
		}
		detail := ""
		if ev.VM != nil {
			detail = ev.VM.State
			if ev.VM.IP != "" {
				detail += " " + ev.VM.IP
			}
		}
		_, err := fmt.Fprintf(app.Stdout, "%s  %-14s %s %s\n", ev.Time.Local().Format("15:04:05.000"), ev.Type, ev.Name, detail)
		return err
	})
}
