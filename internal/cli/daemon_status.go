package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func (app *App) newDaemonStatusCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the daemon's pid, version, paths, VM counts and listeners",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runDaemonStatus(cmd.Context(), cmd, output)
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func (app *App) runDaemonStatus(ctx context.Context, cmd *cobra.Command, output string) error {
	if err := checkOutput(cmd, output); err != nil {
		return err
	}
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if output == "json" {
		return writeJSON(app.Stdout, st)
	}
	var counts []string
	total := 0
	for state, n := range st.VMs {
		counts = append(counts, fmt.Sprintf("%d %s", n, state))
		total += n
	}
	sort.Strings(counts)
	vms := fmt.Sprintf("%d", total)
	if len(counts) > 0 {
		vms += " (" + strings.Join(counts, ", ") + ")"
	}
	var listeners []string
	for _, l := range st.Listeners {
		listeners = append(listeners, fmt.Sprintf("%s %s %s", l.Name, l.Network, l.Address))
	}
	if len(listeners) == 0 {
		listeners = []string{"none"}
	}
	pairs := []string{
		"pid", fmt.Sprint(st.PID),
		"version", st.Version,
		"build id", st.BuildID,
		"executable", st.Executable,
		"socket", st.Socket,
		"database", st.Database,
		"log file", st.LogFile,
		"log level", st.LogLevel,
		"uptime", time.Duration(st.UptimeSeconds * float64(time.Second)).Round(time.Second).String(),
		"vms", vms,
		"images", fmt.Sprint(st.Images),
		"listeners", strings.Join(listeners, "; "),
		"dns records", fmt.Sprint(st.DNSRecords),
		"network", dash(st.Allocation),
		"runtime bundle", dash(st.Runtime),
	}
	for _, p := range st.Problems {
		pairs = append(pairs, "problem", p)
	}
	return kv(app.Stdout, pairs...)
}
