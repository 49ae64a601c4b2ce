package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"banger/internal/api"
)

func (app *App) newVMCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "vm",
		Aliases: []string{"vms"},
		Short:   "Create, run, reach and remove VMs",
	}
	cmd.AddCommand(
		app.newVMCreateCommand(),
		app.newVMListCommand(),
		app.newVMShowCommand(),
		app.newVMStartCommand(),
		app.newVMStopCommand(),
		app.newVMKillCommand(),
		app.newVMRestartCommand(),
		app.newVMPauseCommand(),
		app.newVMResumeCommand(),
		app.newVMSuspendCommand(),
		app.newVMCloneCommand(),
		app.newVMRemoveCommand(),
		app.newVMResizeCommand(),
		app.newVMSSHCommand(),
		app.newVMExecCommand(),
		app.newVMCpCommand(),
		app.newVMForwardCommand(),
		app.newVMLogsCommand(),
	)
	return cmd
}

// targets resolves the VM names a multi-VM command acts on.
func (app *App) targets(ctx context.Context, cmd *cobra.Command, c *api.Client, args []string, all bool) ([]string, error) {
	if all && len(args) > 0 {
		return nil, usageError(cmd, "give VM names or --all, not both")
	}
	if !all {
		if len(args) == 0 {
			return nil, usageError(cmd, "name at least one VM (or use --all)")
		}
		return args, nil
	}
	vms, err := c.VMs(ctx, false)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(vms))
	for _, v := range vms {
		names = append(names, v.Name)
	}
	return names, nil
}

// eachVM connects, resolves the VMs a multi-VM command names (or all of
// them with --all) and runs fn for each, going on after failures.
func (app *App) eachVM(ctx context.Context, cmd *cobra.Command, args []string, all bool, fn func(c *api.Client, name string) error) error {
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	names, err := app.targets(ctx, cmd, c, args, all)
	if err != nil {
		return err
	}
	return app.forEach(names, func(name string) error { return fn(c, name) })
}

// forEach runs fn for every named VM, reporting each failure and going on;
// the command fails when any did.
func (app *App) forEach(names []string, fn func(name string) error) error {
	failed := 0
	for _, n := range names {
		if err := fn(n); err != nil {
			failed++
			if len(names) == 1 {
				return err
			}
			printError(app.Stderr, fmt.Errorf("%s: %w", n, err))
		}
	}
	if failed > 0 {
		return &exitError{code: 1}
	}
	return nil
}

// completeVMNames offers VM names for shell completion.
// completeOneVMName completes the first argument only (vm clone SRC NEW:
// NEW is a name of the user's choosing).
func (app *App) completeOneVMName(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return app.completeVMNames(cmd, args, toComplete)
}

func (app *App) completeVMNames(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	c, err := app.connect(cmd.Context())
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	vms, err := c.VMs(cmd.Context(), false)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, v := range vms {
		names = append(names, v.Name)
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

func isNotFound(err error) bool { return errors.Is(err, api.ErrNotFound) }
