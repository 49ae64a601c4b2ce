package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"banger/internal/api"
)

type imagePruneOptions struct {
	dryRun  bool
	logDays int
	output  string
}

func (app *App) newImagePruneCommand() *cobra.Command {
	var o imagePruneOptions
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove cached files that no image or VM needs, to bound banger's disk use",
		Long: `Remove what banger keeps only to be faster, and what failed builds left:

  - bootstrap cache entries (finished images under the cache directory)
    that no registered image was made from, and downloaded Debian packages
    superseded by a newer download of the same package;
  - blank disk templates that no new VM would use (sizes no VM, image or
    default asks for, or made by an older banger);
  - build logs older than --logs-older-than days that no image points to.

Images and VMs, their disks and logs are never touched: ` + "`banger image rm`" + ` and
` + "`banger vm rm`" + ` remove those. --dry-run lists what would go and how many bytes
it frees, and removes nothing. ` + "`banger doctor`" + ` shows what banger's files take.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runImagePrune(cmd.Context(), cmd, o)
		},
	}
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "list what would be removed, remove nothing")
	cmd.Flags().IntVar(&o.logDays, "logs-older-than", 30, "remove build logs last written more than this many days ago")
	addOutputFlag(cmd, &o.output)
	return cmd
}

func (app *App) runImagePrune(ctx context.Context, cmd *cobra.Command, o imagePruneOptions) error {
	if err := checkOutput(cmd, o.output); err != nil {
		return err
	}
	if o.logDays < 1 {
		return usageError(cmd, "--logs-older-than %d: use 1 day or more", o.logDays)
	}
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	res, err := c.PruneImages(ctx, api.PruneRequest{DryRun: o.dryRun, LogDays: o.logDays})
	if err != nil {
		return fmt.Errorf("pruning banger's caches: %w", err)
	}
	if o.output == "json" {
		return writeJSON(app.Stdout, res)
	}
	if len(res.Items) > 0 {
		t := newTable(app.Stdout, "KIND", "SIZE", "PATH", "WHY")
		for _, it := range res.Items {
			t.row(it.Kind, humanBytes(it.Bytes), it.Path, it.Why)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(app.Stdout, "skipped %s\n", s)
	}
	verb := "removed"
	if res.DryRun {
		verb = "would remove"
	}
	fmt.Fprintf(app.Stdout, "%s %d items, %s\n", verb, len(res.Items), humanBytes(res.Bytes))
	if res.DryRun && len(res.Items) > 0 {
		fmt.Fprintln(app.Stdout, "dry run: nothing was removed; `banger image prune` removes them")
	}
	return nil
}
