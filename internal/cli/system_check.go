package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

func (app *App) newSystemCheckCommand() *cobra.Command {
	var (
		fix    bool
		output string
	)
	cmd := &cobra.Command{
		Use:   "check [--fix]",
		Short: "Compare the host with banger's database: leaks and missing resources",
		Long: `List every difference between the host and bangerd's database:

  no owner  something banger made that no VM or image owns: a TAP device, a
            VMM process, a socket, a VM or image directory, an interrupted
            build's staging directory, an unfinished disk template
  missing   something a VM or image row expects that is not there: a running
            VM's VMM or TAP, a VM's root or work disk, an image's files

VMs and images an operation is working on are skipped. The daemon's
reconcile loop repairs most differences within a second on its own; --fix
does the same at once, also removes image directories no image owns (never
by reconcile alone), and reports what it repaired. A missing disk cannot be
repaired: the VM stays listed so you can see it, and ` + "`banger vm rm NAME`" + ` removes it.

The exit status is 1 when anything is (still) off, so scripts and tests use
it as their oracle after a crash.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runSystemCheck(cmd.Context(), cmd, fix, output)
		},
	}
	cmd.Flags().BoolVar(&fix, "fix", false, "repair what reconcile would, and remove image directories no image owns")
	addOutputFlag(cmd, &output)
	return cmd
}

func (app *App) runSystemCheck(ctx context.Context, cmd *cobra.Command, fix bool, output string) error {
	if err := checkOutput(cmd, output); err != nil {
		return err
	}
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	rep, err := c.Check(ctx, fix)
	if err != nil {
		return fmt.Errorf("comparing the host with the database: %w", err)
	}
	if output == "json" {
		if err := writeJSON(app.Stdout, rep); err != nil {
			return err
		}
	} else {
		for _, f := range rep.Fixed {
			fmt.Fprintf(app.Stdout, "fixed: %s %s (%s)\n", f.Kind, f.Name, f.Problem)
		}
		if len(rep.Findings) == 0 {
			fmt.Fprintln(app.Stdout, "the host matches the database: nothing without an owner, nothing missing")
		} else {
			t := newTable(app.Stdout, "PROBLEM", "KIND", "NAME", "DETAIL")
			for _, f := range rep.Findings {
				t.row(f.Problem, f.Kind, f.Name, f.Detail)
			}
			if err := t.flush(); err != nil {
				return err
			}
		}
		if rep.Error != "" {
			fmt.Fprintf(app.Stderr, "banger: not everything could be repaired: %s\n", rep.Error)
		}
	}
	if len(rep.Findings) > 0 || rep.Error != "" {
		return &exitError{code: 1}
	}
	return nil
}
