package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"banger/internal/api"
)

func (app *App) newVMForwardCommand() *cobra.Command {
	var remove bool
	cmd := &cobra.Command{
		Use:   "forward NAME [--rm] [[ADDR:]HOSTPORT:GUESTPORT[/udp]...]",
		Short: "Forward host ports to a VM's ports (kept with the VM), or list or remove them",
		Long: `Forward a port of the host to a port of the VM, TCP or UDP. Forwards are
kept with the VM: they run whenever it does, come back after a VM or daemon
restart, and go with 'vm rm'. They listen on 127.0.0.1 unless an address is
given. A port that is in use, or privileged for your user, is refused with
a message that says so. Without specs, the VM's forwards are listed.`,
		Example: `  banger vm forward dev 8080:80            # http://127.0.0.1:8080 reaches dev's port 80
  banger vm forward dev 0.0.0.0:2222:22     # reachable from the network too
  banger vm forward dev 5353:53/udp
  banger vm forward dev --rm 8080:80
  banger vm forward dev                     # list`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: app.completeVMNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runVMForward(cmd.Context(), cmd, args[0], args[1:], remove)
		},
	}
	cmd.Flags().BoolVar(&remove, "rm", false, "remove the given forwards instead of adding them")
	return cmd
}

func (app *App) runVMForward(ctx context.Context, cmd *cobra.Command, name string, specs []string, remove bool) error {
	if remove && len(specs) == 0 {
		return usageError(cmd, "--rm needs the forwards to remove")
	}
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	var v api.VM
	switch {
	case len(specs) == 0:
		v, err = c.VM(ctx, name)
	case remove:
		v, err = c.Forwards(ctx, name, api.ForwardsRequest{Remove: specs})
	default:
		v, err = c.Forwards(ctx, name, api.ForwardsRequest{Add: specs})
	}
	if err != nil {
		return err
	}
	for _, f := range v.Forwards {
		fmt.Fprintln(app.Stdout, f)
	}
	return nil
}
