package cli

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"banger/internal/allocation"
	"banger/internal/hostsetup"
)

type systemSetupOptions struct {
	user, helper, pool string
	bits               int
	remove             bool
}

func (app *App) newSystemSetupCommand() *cobra.Command {
	var o systemSetupOptions
	cmd := &cobra.Command{
		Use:   "setup [--user NAME] [--remove]",
		Short: "Let a user who is not root run banger (once, as root)",
		Long: `Set up this host for one user who is not root, once, as root:

  sudo banger system setup              # for the user running sudo
  sudo banger system setup --user NAME  # for another user

It gives the user their own bridge, subnet, TAP name prefix, NAT chains, DNS
ports and DNS zone (NAME.USER.vm on the host), recorded in
/etc/banger/users/USER.json; installs banger's privileged helper, the one
program that changes that network for them, as
/usr/local/libexec/banger/banger-helper; allows exactly that program in
/etc/sudoers.d/banger-USER; adds the user to the group of /dev/kvm; and gives
them subordinate uids and gids for image bootstraps without root. Running it
again changes nothing; --remove takes all of it back, the user's bridge,
TAPs and NAT chains included ('banger system teardown' removes only what
runs and lives on the host for the user, keeping the set-up). See
docs/security.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runSystemSetup(cmd.Context(), cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.user, "user", "", "user to set up (default: the user running sudo)")
	f.BoolVar(&o.remove, "remove", false, "undo the set-up for the user")
	f.StringVar(&o.helper, "helper", "", "banger-helper binary to install (default: the one beside banger)")
	f.StringVar(&o.pool, "pool", allocation.DefaultPool().Subnets.String(), "IPv4 range users' subnets are taken from")
	f.IntVar(&o.bits, "subnet-bits", allocation.DefaultPool().Bits, "prefix length of each user's subnet")
	return cmd
}

func (app *App) runSystemSetup(ctx context.Context, cmd *cobra.Command, o systemSetupOptions) error {
	if o.user == "" {
		o.user = os.Getenv("SUDO_USER")
	}
	pool := allocation.DefaultPool()
	p, err := netip.ParsePrefix(o.pool)
	if err != nil {
		return usageError(cmd, "--pool %q: %v", o.pool, err)
	}
	pool.Subnets, pool.Bits = p, o.bits
	if err := pool.Validate(); err != nil {
		return usageError(cmd, "%v", err)
	}
	if o.helper == "" {
		o.helper, err = helperBesideBanger()
		if err != nil {
			return err
		}
	}
	opts := hostsetup.Options{User: o.user, Pool: pool, HelperSource: o.helper}
	deps := hostsetup.Deps{EUID: os.Geteuid(), Out: app.Stdout}
	if o.remove {
		if err := hostsetup.Remove(ctx, opts, deps); err != nil {
			return err
		}
		fmt.Fprintf(app.Stdout, "banger is no longer set up for %s\n", o.user)
		return nil
	}
	_, err = hostsetup.Setup(ctx, opts, deps)
	return err
}

// helperBesideBanger returns the banger-helper next to the running banger
// (symlinks resolved), where `make build` and `make install` put it.
func helperBesideBanger() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding banger's own binary to locate banger-helper: %w (name it with --helper)", err)
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	return filepath.Join(filepath.Dir(exe), "banger-helper"), nil
}
