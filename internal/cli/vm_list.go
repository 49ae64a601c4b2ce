package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"banger/internal/api"
	"banger/internal/vm"
)

func (app *App) newVMListCommand() *cobra.Command {
	var output string
	var all bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls", "ps"},
		Short:   "List VMs with their state, address and live usage",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runVMList(cmd.Context(), cmd, output, all)
		},
	}
	addOutputFlag(cmd, &output)
	cmd.Flags().BoolVarP(&all, "all", "a", false, "include the image builder's temporary VMs")
	return cmd
}

func (app *App) runVMList(ctx context.Context, cmd *cobra.Command, output string, all bool) error {
	if err := checkOutput(cmd, output); err != nil {
		return err
	}
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	vms, err := c.VMs(ctx, all)
	if err != nil {
		return err
	}
	if output == "json" {
		return writeJSON(app.Stdout, vms)
	}
	renderVMTable(app, vms, time.Now())
	return nil
}

func renderVMTable(app *App, vms []api.VM, now time.Time) {
	t := newTable(app.Stdout, "NAME", "STATE", "IP", "DNS", "CPU%", "MEM", "DISK", "IMAGE", "AGE", "FORWARDS")
	for _, v := range vms {
		cpu, mem := "-", "-"
		switch v.State {
		case "running", "paused":
			cpu = fmt.Sprintf("%.1f", v.CPUPercent)
			mem = humanBytes(v.RSSBytes)
		case "suspended":
			// The memory is on disk: show how much.
			mem = humanBytes(v.SavedBytes) + " saved"
		}
		t.row(v.Name, stateColor(app.Stdout, v.State), dash(v.IP), v.DNSName, cpu, mem, vm.FormatSize(v.DiskBytes), v.Image, humanAge(v.CreatedAt, now), shortForwards(v.Forwards))
	}
	_ = t.flush()
}

// shortForwards renders forwards compactly for a table: the default
// address and protocol are left out ("8080:80, 5353:53/udp").
func shortForwards(specs []string) string {
	if len(specs) == 0 {
		return "-"
	}
	short := make([]string, len(specs))
	for i, s := range specs {
		s = strings.TrimPrefix(s, "127.0.0.1:")
		short[i] = strings.TrimSuffix(s, "/tcp")
	}
	return strings.Join(short, ", ")
}
