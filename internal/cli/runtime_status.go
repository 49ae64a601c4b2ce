package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"banger/internal/runtimebundle"
)

func (app *App) newRuntimeStatusCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show where the runtime bundle is looked for and what was found",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runRuntimeStatus(cmd.Context(), cmd, output)
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func (app *App) runRuntimeStatus(_ context.Context, cmd *cobra.Command, output string) error {
	if err := checkOutput(cmd, output); err != nil {
		return err
	}
	loc, err := app.runtimeLocator()
	if err != nil {
		return err
	}
	st := runtimebundle.CurrentStatus(loc)
	if output == "json" {
		return writeJSON(app.Stdout, st)
	}
	for _, c := range st.Candidates {
		fmt.Fprintf(app.Stdout, "candidate: %s (%s)\n", c.Dir, c.Source)
	}
	if st.Found == nil {
		fmt.Fprintf(app.Stdout, "no bundle: %s\n", st.Problem)
		return nil
	}
	pairs := []string{"bundle", st.Found.Dir}
	if b := st.Bundle; b != nil {
		pairs = append(pairs, "name", b.Name, "kernel", b.KernelVersion, "vmm", b.VMM, "files", fmt.Sprint(len(b.Files)))
	}
	if r := st.Installed; r != nil {
		pairs = append(pairs, "installed from", r.URL, "sha256", r.SHA256, "installed at", r.InstalledAt.Local().String())
	}
	if st.Problem != "" {
		pairs = append(pairs, "problem", st.Problem)
	}
	return kv(app.Stdout, pairs...)
}
