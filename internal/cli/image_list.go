package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"banger/internal/vm"
)

func (app *App) newImageListCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List guest images",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runImageList(cmd.Context(), cmd, output)
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func (app *App) runImageList(ctx context.Context, cmd *cobra.Command, output string) error {
	if err := checkOutput(cmd, output); err != nil {
		return err
	}
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	imgs, err := c.Images(ctx)
	if err != nil {
		return err
	}
	if output == "json" {
		return writeJSON(app.Stdout, imgs)
	}
	t := newTable(app.Stdout, "NAME", "SOURCE", "KERNEL", "SIZE", "ON DISK", "VMS", "AGE", "")
	now := time.Now()
	for _, i := range imgs {
		mark := ""
		if i.Stale {
			mark = "stale"
		}
		t.row(i.Name, i.Source, dash(i.KernelVersion), vm.FormatSize(i.SizeBytes), humanBytes(i.AllocatedBytes), fmt.Sprint(i.VMs), humanAge(i.CreatedAt, now), mark)
	}
	return t.flush()
}
