package cli

import (
	"github.com/spf13/cobra"
)

func (app *App) newImageCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "image",
		Aliases: []string{"images"},
		Short:   "Bootstrap, build, commit, list, remove and prune guest images",
	}
	cmd.AddCommand(
		app.newImageBootstrapCommand(),
		app.newImageBuildCommand(),
		app.newImageCommitCommand(),
		app.newImageListCommand(),
		app.newImageShowCommand(),
		app.newImageRemoveCommand(),
		app.newImagePruneCommand(),
		app.newImageWarmCommand(),
	)
	return cmd
}
