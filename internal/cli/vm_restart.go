package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

func (app *App) newVMRestartCommand() *cobra.Command {
	var wait waitFlags
	cmd := &cobra.Command{
		Use:               "restart NAME...",
		Short:             "Stop VMs gracefully and boot them again",
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: app.completeVMNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runVMRestart(cmd.Context(), args, wait)
		},
	}
	addWaitFlags(cmd, &wait)
	return cmd
}

func (app *App) runVMRestart(ctx context.Context, names []string, wait waitFlags) error {
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	return app.forEach(names, func(name string) error {
		pr := newProgress(app.Stderr)
		v, err := c.RestartVM(ctx, name, wait.enabled(), pr.Update)
		pr.Done()
		if err != nil {
			return err
		}
		fmt.Fprintf(app.Stdout, "restarted %s (%s at %s)\n", v.Name, v.DNSName, v.IP)
		return nil
	})
}
