package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"banger/internal/vm"
)

func (app *App) newVMShowCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:               "show NAME",
		Aliases:           []string{"inspect"},
		Short:             "Show one VM in detail: config, disks, address, logs",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: app.completeVMNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runVMShow(cmd.Context(), cmd, args[0], output)
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func (app *App) runVMShow(ctx context.Context, cmd *cobra.Command, name, output string) error {
	if err := checkOutput(cmd, output); err != nil {
		return err
	}
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	v, err := c.VM(ctx, name)
	if err != nil {
		return err
	}
	if output == "json" {
		return writeJSON(app.Stdout, v)
	}
	usage := "-"
	switch v.State {
	case "running", "paused":
		usage = fmt.Sprintf("%.1f%% cpu, %s rss (pid %d)", v.CPUPercent, humanBytes(v.RSSBytes), v.PID)
	case "suspended":
		usage = fmt.Sprintf("none; state and memory saved in %s (%s on disk); `banger vm start %s` resumes it", v.SavedMemory, humanBytes(v.SavedBytes), v.Name)
	}
	uptime := ""
	if !v.StartedAt.IsZero() {
		uptime = time.Since(v.StartedAt).Round(time.Second).String()
	}
	return kv(app.Stdout,
		"name", v.Name,
		"state", stateColor(app.Stdout, v.State),
		"reason", v.Reason,
		"id", v.ID,
		"image", v.Image,
		"cpus", fmt.Sprint(v.CPUs),
		"memory", vm.FormatSize(int64(v.MemoryMiB)*vm.MiB),
		"address", dash(v.IP),
		"dns", v.DNSName,
		"mac", v.MAC,
		"tap", v.TAP,
		"forwards", strings.Join(v.Forwards, ", "),
		"usage", usage,
		"uptime", uptime,
		"boot", bootSummary(v.Boot),
		"root disk", fmt.Sprintf("%s (%s used)", v.RootDisk, humanBytes(v.RootUsed)),
		"work disk", fmt.Sprintf("%s (%s, %s used, mounted at /work)", v.WorkDisk, vm.FormatSize(v.DiskBytes), humanBytes(v.WorkUsed)),
		"console log", v.ConsoleLog,
		"vmm log", v.VMMLog,
		"created", v.CreatedAt.Local().Format(time.RFC3339),
	)
}
