package cli

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"banger/internal/buildinfo"
)

// newInternalManCommand is how `make man`, `make deb` and `make install`
// write the man pages: one page per command of the Cobra tree
// (banger.1, banger-vm-create.1, ...), hidden commands left out.
func (app *App) newInternalManCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "man DIR",
		Short: "Write banger's man pages (section 1) into DIR",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.writeManPages(args[0])
		},
	}
}

// writeManPages renders the whole command tree as man pages into dir. The
// date is SOURCE_DATE_EPOCH's when set, so that a package build is
// reproducible, else today's.
func (app *App) writeManPages(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing man pages: %w", err)
	}
	date := time.Now().UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("writing man pages: SOURCE_DATE_EPOCH=%q is not a number of seconds", s)
		}
		date = time.Unix(sec, 0).UTC()
	}
	root := app.newRootCommand()
	root.DisableAutoGenTag = true
	root.InitDefaultCompletionCmd()
	header := &doc.GenManHeader{
		Title:   "BANGER",
		Section: "1",
		Date:    &date,
		Source:  "banger " + buildinfo.Version,
		Manual:  "banger manual",
	}
	if err := doc.GenManTree(root, header, dir); err != nil {
		return fmt.Errorf("writing man pages into %s: %w", dir, err)
	}
	return nil
}
