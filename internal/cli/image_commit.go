package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"banger/internal/api"
	"banger/internal/vm"
)

func (app *App) newImageCommitCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "commit VM NEW",
		Short: "Turn a stopped VM's root disk into an image",
		Long: `Register the root disk of the stopped VM as the image NEW, for customising an
image by hand: create a VM, 'banger vm ssh' in, change things, 'banger vm
stop', then commit. The VM keeps its disks: the image gets a reflink or
sparse copy of a cloned root, or its own image with the VM's layer applied
(flattened), and the result is checked and scrubbed of the VM's identity (SSH
host keys, machine-id, authorized_keys) like a built image. NEW shares the
VM's image's kernel and initrd and records its installed packages.`,
		Example: `  banger vm stop dev && banger image commit dev dev-snapshot`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runImageCommit(cmd.Context(), cmd, args[0], args[1], output)
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func (app *App) runImageCommit(ctx context.Context, cmd *cobra.Command, vmName, name, output string) error {
	if err := checkOutput(cmd, output); err != nil {
		return err
	}
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	pr := newProgress(app.Stderr)
	img, err := c.CommitImage(ctx, api.CommitImageRequest{VM: vmName, Name: name}, app.imageProgress(pr))
	pr.Done()
	if err != nil {
		return err
	}
	if output == "json" {
		return writeJSON(app.Stdout, img)
	}
	fmt.Fprintf(app.Stdout, "image %s committed from vm %s: %s root file system (%s on disk)\n  create a VM: banger vm create dev --image %s\n",
		img.Name, vmName, vm.FormatSize(img.SizeBytes), humanBytes(img.AllocatedBytes), img.Name)
	return nil
}
