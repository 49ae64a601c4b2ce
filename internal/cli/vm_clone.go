package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

func (app *App) newVMCloneCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "clone SRC NEW",
		Short: "Fork a running, paused or suspended VM into a new VM",
		Long: `Fork the VM SRC, as it is at this moment, into a new VM called NEW: its
processes, memory and files come from SRC, its disks are copies of SRC's, and
it has an identity of its own (address, MAC, hostname and NEW.vm, machine-id,
SSH host key, fresh entropy, the host's time). A running SRC is paused for the
few moments the clone takes and then runs on; a paused one stays paused; a
suspended one stays suspended. The command returns when NEW answers SSH.

The clone needs iproute2 and perl in the guest (banger's images have both).
Connections the source had open do not carry over to the clone.`,
		Example: `  banger vm clone dev dev2
  banger vm exec dev2 -- hostname`,
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: app.completeOneVMName,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runVMClone(cmd.Context(), args[0], args[1])
		},
	}
}

func (app *App) runVMClone(ctx context.Context, src, name string) error {
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	pr := newProgress(app.Stderr)
	v, err := c.CloneVM(ctx, src, name, pr.Update)
	pr.Done()
	if err != nil {
		return err
	}
	fmt.Fprintf(app.Stdout, "cloned %s into %s (%s at %s)\n", src, v.Name, v.DNSName, v.IP)
	return nil
}
