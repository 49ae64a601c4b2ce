package cli

import (
	"github.com/spf13/cobra"
)

// waitFlags are the flags of the commands that boot a VM: they return when
// the guest's SSH server answers, on a terminal or not, unless --no-wait.
type waitFlags struct {
	noWait bool
	wait   bool // the older --wait, kept so scripts that pass it still work
}

func addWaitFlags(cmd *cobra.Command, w *waitFlags) {
	cmd.Flags().BoolVar(&w.noWait, "no-wait", false, "return once the VMM booted, without waiting for the guest's SSH server")
	cmd.Flags().BoolVar(&w.wait, "wait", true, "wait until the guest's SSH server answers (the default)")
	_ = cmd.Flags().MarkHidden("wait")
}

// enabled says whether to wait for SSH.
func (w waitFlags) enabled() bool { return w.wait && !w.noWait }
