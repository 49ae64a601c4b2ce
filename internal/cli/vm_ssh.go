package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"banger/internal/api"
	"banger/internal/config"
)

func (app *App) newVMSSHCommand() *cobra.Command {
	var user string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "ssh NAME [-- COMMAND [ARGS...]]",
		Short: "Open a shell in a VM, or run a command in it, over SSH",
		Long: `Open an interactive shell in a running VM, or run a command in it.

banger hands off to the OpenSSH client with banger's own key and a
known_hosts file holding the host key banger generated for this VM, so the
guest is verified without prompts and re-creating a VM with the same name
never triggers a host-key warning. Arguments after -- go to ssh, joined into
one remote command line as ssh does (use 'banger vm exec' to keep each
argument intact). A VM that is still booting is waited for, up to
--wait-timeout.`,
		Example: `  banger vm ssh dev
  banger vm ssh dev -- uname -a
  banger vm ssh dev -- -L 8080:localhost:80   # ssh options work too`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: app.completeVMNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runVMSSH(cmd.Context(), args[0], user, timeout, args[1:])
		},
	}
	cmd.Flags().StringVarP(&user, "user", "u", "root", "user to log in as")
	cmd.Flags().DurationVar(&timeout, "wait-timeout", 3*time.Minute, "how long to wait for a VM that is still booting")
	return cmd
}

// sshArgv builds the OpenSSH client's argv for a VM. It is pure so that it
// can be tested as a value.
func sshArgv(paths config.Paths, v api.VM, user string, extra []string) []string {
	argv := []string{"ssh",
		"-i", paths.UserKey(),
		"-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile=" + paths.KnownHosts(),
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "HostKeyAlias=" + v.DNSName,
		// A guest under emulation that is still finishing its boot
		// may take more than 10 s to send its banner.
		"-o", "ConnectTimeout=30",
		"-o", "LogLevel=ERROR",
		user + "@" + v.IP,
	}
	return append(argv, extra...)
}

func (app *App) runVMSSH(ctx context.Context, name, user string, timeout time.Duration, extra []string) error {
	v, err := app.waitGuest(ctx, name, timeout)
	if err != nil {
		return err
	}
	bin, err := exec.LookPath("ssh")
	if err != nil {
		return &api.Error{Code: api.CodePrecondition, Message: "the OpenSSH client (ssh) is not installed", Hint: "install it with `sudo apt-get install openssh-client`"}
	}
	argv := sshArgv(app.cfg.Paths, v, user, extra)
	if err := syscall.Exec(bin, argv, os.Environ()); err != nil {
		return fmt.Errorf("running %s: %w", bin, err)
	}
	return nil
}

// waitGuest returns the VM once its guest answers on SSH, waiting up to
// timeout for one that is still booting; a stopped VM fails with the
// command that starts it.
func (app *App) waitGuest(ctx context.Context, name string, timeout time.Duration) (api.VM, error) {
	c, err := app.connect(ctx)
	if err != nil {
		return api.VM{}, err
	}
	return c.WaitVM(ctx, name, api.WaitVMRequest{TimeoutSeconds: int(timeout.Round(time.Second) / time.Second)})
}
