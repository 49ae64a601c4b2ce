package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"banger/internal/vm"
)

func (app *App) newImageShowCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show an image's files, kernel and package manifest",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runImageShow(cmd.Context(), cmd, args[0], output)
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func (app *App) runImageShow(ctx context.Context, cmd *cobra.Command, name, output string) error {
	if err := checkOutput(cmd, output); err != nil {
		return err
	}
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	i, err := c.Image(ctx, name)
	if err != nil {
		return err
	}
	if output == "json" {
		return writeJSON(app.Stdout, i)
	}
	stale := ""
	if i.Stale {
		stale = "yes: the package manifest changed since this image was built"
	}
	return kv(app.Stdout,
		"name", i.Name,
		"source", i.Source,
		"kernel version", i.KernelVersion,
		"kernel", i.Kernel,
		"vmlinux", i.Vmlinux,
		"initrd", i.Initrd,
		"rootfs", fmt.Sprintf("%s (%s, %s on disk)", i.Rootfs, vm.FormatSize(i.SizeBytes), humanBytes(i.AllocatedBytes)),
		"manifest", i.Manifest,
		"manifest sha256", i.ManifestSHA256,
		"packages sha256", i.PackagesSHA256,
		"stale", stale,
		"build log", i.BuildLog,
		"vms", fmt.Sprint(i.VMs),
		"created", i.CreatedAt.Local().Format(time.RFC3339),
	)
}
