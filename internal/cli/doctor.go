package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"banger/internal/api"
)

func (app *App) newDoctorCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the host for everything banger needs, and say how to fix what is missing",
		Long: `Show every check bangerd runs before an operation (tools, the VMM, TAP
support, privileges), each once, with the operations a failure blocks, plus
host facts: KVM (and why it cannot be used), IP forwarding, reflink support
of the data directory, free disk space, cgroup v2, the OpenSSH client, and
the daemon itself. The daemon runs the checks (banger starts it when
needed), so doctor reports exactly what the daemon sees. Each failing line
says how to fix it. The exit status is 1 when a check fails (warnings do
not).

With vmm = "auto" (the default), banger uses Firecracker when KVM can run it
and banger-vmm-qemu (QEMU, KVM or software emulation) otherwise; doctor says
which one it picked and why.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runDoctor(cmd.Context(), cmd, output)
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func (app *App) runDoctor(ctx context.Context, cmd *cobra.Command, output string) error {
	if err := checkOutput(cmd, output); err != nil {
		return err
	}
	cfg, err := app.config()
	if err != nil {
		return err
	}
	checks, err := app.doctorChecks(ctx)
	if err != nil {
		return err
	}
	failed := false
	for _, c := range checks {
		failed = failed || c.Status == api.CheckFail
	}
	if output == "json" {
		if err := writeJSON(app.Stdout, checks); err != nil {
			return err
		}
	} else {
		t := newTable(app.Stdout, "CHECK", "STATUS", "DETAIL")
		for _, c := range checks {
			t.row(c.Name, c.Status, c.Detail)
			if c.Fix != "" && c.Status != api.CheckOK {
				t.row("", "", "fix: "+c.Fix)
			}
		}
		if err := t.flush(); err != nil {
			return err
		}
		fmt.Fprintf(app.Stdout, "\nconfig: %s\n", cfg.Paths.ConfigFile)
	}
	if failed {
		return &exitError{code: 1}
	}
	return nil
}

// doctorChecks asks the daemon for its checks. A daemon that cannot be
// reached is itself the failing check, with the error that says why.
func (app *App) doctorChecks(ctx context.Context) ([]api.Check, error) {
	c, err := app.connect(ctx)
	if err == nil {
		var checks []api.Check
		if checks, err = c.Doctor(ctx); err == nil {
			return checks, nil
		}
	}
	if errors.Is(err, api.ErrInterrupted) {
		return nil, err
	}
	return []api.Check{{Name: "daemon", Status: api.CheckFail, Detail: err.Error(),
		Fix: "`banger daemon start` starts it; `banger daemon logs` shows why it stopped"}}, nil
}
