package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"banger/internal/guest"
)

func (app *App) newSSHConfigCommand() *cobra.Command {
	var install bool
	cmd := &cobra.Command{
		Use:   "ssh-config [--install]",
		Short: "Print the OpenSSH config for every VM, or include it from ~/.ssh/config",
		Long: `Print an OpenSSH client configuration block for every VM: its address,
user root, banger's key, and the host key banger pinned for it with strict
checking, under the name NAME.vm (NAME.USER.vm for a user who is not root).
bangerd keeps this file current as VMs come and go.

--install adds one line, "Include FILE", at the top of ~/.ssh/config, so
that ssh NAME.vm, scp, rsync -e ssh and VS Code Remote-SSH reach the VMs
with no prompt and no key to pass. Running it again changes nothing.`,
		Example: `  banger ssh-config --install && ssh dev.vm
  rsync -a ./src/ dev.vm:/work/src/
  ssh -F <(banger ssh-config) dev.vm`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runSSHConfig(cmd.Context(), install)
		},
	}
	cmd.Flags().BoolVar(&install, "install", false, "add an Include line for banger's file to ~/.ssh/config")
	return cmd
}

func (app *App) runSSHConfig(ctx context.Context, install bool) error {
	// The daemon writes the file when it starts and whenever VMs change.
	if _, err := app.connect(ctx); err != nil {
		return err
	}
	path := app.cfg.Paths.SSHConfig()
	if !install {
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("reading the ssh configuration bangerd keeps: %w (see `banger daemon logs`)", err)
		}
		_, err = app.Stdout.Write(data)
		return err
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return fmt.Errorf("finding ~/.ssh: %w", err)
	}
	user := filepath.Join(home, ".ssh", "config")
	cur, err := os.ReadFile(user)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", user, err)
	}
	next, changed, err := guest.AddInclude(cur, path)
	if err != nil {
		return err
	}
	if !changed {
		fmt.Fprintf(app.Stdout, "%s already includes %s\n", user, path)
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(user), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(user), err)
	}
	if err := writeFileAtomic(user, next, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(app.Stdout, "added \"Include %s\" to %s: ssh NAME.vm reaches your VMs\n", path, user)
	return nil
}

// writeFileAtomic replaces path with data through a temporary file, keeping
// the mode of an existing file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	tmp := path + ".banger-tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
