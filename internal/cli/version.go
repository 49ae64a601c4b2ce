package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"banger/internal/api"
	"banger/internal/buildinfo"
	"banger/internal/preflight"
	"banger/internal/runtimebundle"
	"banger/internal/system"
)

// versionReport is what `banger version` tells, as JSON with -o json.
type versionReport struct {
	CLI       string `json:"cli"`
	Daemon    string `json:"daemon,omitempty"`
	DaemonPID int    `json:"daemon_pid,omitempty"`
	VMM       string `json:"vmm,omitempty"`
	VMMBinary string `json:"vmm_binary"`
	// Runtime describes the runtime bundle ("" when there is none);
	// RuntimeProblem says why none was found.
	Runtime        string `json:"runtime_bundle,omitempty"`
	RuntimeDir     string `json:"runtime_bundle_dir,omitempty"`
	RuntimeProblem string `json:"runtime_bundle_problem,omitempty"`
}

func (app *App) newVersionCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the versions of banger, bangerd, the VMM and the runtime bundle",
		Long: `Print the version of this banger, of the running bangerd (version never
starts one), of the VMM the daemon would boot VMs with (its own --version)
and of the runtime bundle in use, if any. Versions that differ after an
upgrade are normal until the next command restarts bangerd.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runVersion(cmd.Context(), cmd, output)
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func (app *App) runVersion(ctx context.Context, cmd *cobra.Command, output string) error {
	if err := checkOutput(cmd, output); err != nil {
		return err
	}
	r := versionReport{CLI: buildinfo.String()}
	cfg, cfgErr := app.config()
	if cfgErr == nil {
		// Ask a running daemon only.
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if st, err := api.NewClient(cfg.Paths.Socket()).Status(sctx); err == nil {
			r.Daemon, r.DaemonPID = st.Version, st.PID
		}
		cancel()
		loc, _ := app.runtimeLocator()
		st := runtimebundle.CurrentStatus(loc)
		bundleVMM := ""
		switch {
		case st.Bundle != nil:
			r.Runtime = fmt.Sprintf("%s, kernel %s", st.Bundle.Name, st.Bundle.KernelVersion)
			r.RuntimeDir = st.Found.Dir
			if st.Bundle.VMM != "" {
				bundleVMM = runtimebundle.Abs(st.Found.Dir, st.Bundle.VMM)
			}
		default:
			r.RuntimeProblem = st.Problem
		}
		r.VMMBinary, _ = preflight.ResolveVMMWithBundle(cfg.VMM, bundleVMM)
		r.VMM = vmmVersion(ctx, r.VMMBinary)
	}
	if output == "json" {
		return writeJSON(app.Stdout, r)
	}
	daemon := "not running (the next command that needs it starts it)"
	if r.Daemon != "" {
		daemon = fmt.Sprintf("%s (pid %d)", r.Daemon, r.DaemonPID)
	}
	vmm := r.VMM
	if r.VMMBinary != "" {
		vmm = fmt.Sprintf("%s (%s)", r.VMM, r.VMMBinary)
	}
	bundle := "none: " + r.RuntimeProblem
	if r.Runtime != "" {
		bundle = fmt.Sprintf("%s (%s)", r.Runtime, r.RuntimeDir)
	}
	if cfgErr != nil {
		daemon, vmm, bundle = "unknown: "+cfgErr.Error(), "unknown", "unknown"
	}
	fmt.Fprintf(app.Stdout, "banger %s\n", r.CLI)
	return kv(app.Stdout, "bangerd", daemon, "vmm", vmm, "runtime bundle", bundle)
}

// vmmVersion is the first line of `<vmm> --version`, or why there is none.
func vmmVersion(ctx context.Context, bin string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := system.Plain().Output(ctx, bin, "--version")
	if err != nil {
		return "unavailable: " + strings.TrimSpace(err.Error())
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}
