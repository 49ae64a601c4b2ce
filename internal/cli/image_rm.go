package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

func (app *App) newImageRemoveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"remove"},
		Short:   "Remove images that no VM uses",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runImageRemove(cmd.Context(), args)
		},
	}
	return cmd
}

func (app *App) runImageRemove(ctx context.Context, names []string) error {
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	return app.forEach(names, func(name string) error {
		if err := c.RemoveImage(ctx, name); err != nil {
			return err
		}
		fmt.Fprintf(app.Stdout, "removed image %s\n", name)
		return nil
	})
}
