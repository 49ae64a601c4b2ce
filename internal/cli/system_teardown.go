package cli

import (
	"context"
	"errors"
	"os"

	"github.com/spf13/cobra"

	"banger/internal/allocation"
	"banger/internal/hostsetup"
)

type systemTeardownOptions struct {
	user      string
	all, data bool
}

func (app *App) newSystemTeardownCommand() *cobra.Command {
	var o systemTeardownOptions
	cmd := &cobra.Command{
		Use:   "teardown [--user NAME | --all] [--data]",
		Short: "Remove what banger put on this host for a user (as root; VMs must be stopped)",
		Long: `Remove banger's footprint on this host for one user, as root, once none of
their VMs runs:

  sudo banger system teardown                # for the user running sudo
  sudo banger system teardown --user NAME    # for another user ("root": bangerd as root)
  sudo banger system teardown --all          # root and every set-up user (package removal)

It stops the user's bangerd, reverts the resolver settings of their bridge,
removes their TAPs, bridge and NAT chains and their runtime directory
(/run/user/UID/banger: sockets), and once no banger network is left, sets
net.ipv4.ip_forward back to the value it had before banger turned it on.
--data also deletes their images, VM disks, database, logs and caches
(~/.local/share/banger, ~/.local/state/banger, ~/.cache/banger).

The set-up stays (allocation, helper, sudoers rule): the next banger command
brings the network up again. 'banger system setup --remove' undoes the
set-up too. Only processes and network in this network namespace are
touched.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runSystemTeardown(cmd.Context(), cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.user, "user", "", "user whose footprint to remove (default: the user running sudo)")
	f.BoolVar(&o.all, "all", false, "every set-up user and root")
	f.BoolVar(&o.data, "data", false, "also delete the user's images, VM disks, state and caches")
	return cmd
}

func (app *App) runSystemTeardown(ctx context.Context, cmd *cobra.Command, o systemTeardownOptions) error {
	if o.all && o.user != "" {
		return usageError(cmd, "give --user NAME or --all, not both")
	}
	users := []string{o.user}
	switch {
	case o.all:
		allocs, err := allocation.Registry{}.List()
		if err != nil {
			return err
		}
		users = []string{"root"}
		for _, a := range allocs {
			users = append(users, a.User)
		}
	case o.user == "":
		users = []string{os.Getenv("SUDO_USER")}
		if users[0] == "" && os.Geteuid() == 0 {
			users = []string{"root"}
		}
	}
	deps := hostsetup.Deps{EUID: os.Geteuid(), Out: app.Stdout}
	var errs []error
	for _, u := range users {
		err := hostsetup.Teardown(ctx, hostsetup.Options{User: u}, deps, hostsetup.TeardownOptions{Data: o.data})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
