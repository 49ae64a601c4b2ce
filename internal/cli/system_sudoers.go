package cli

import (
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"banger/internal/preflight"
	"banger/internal/system"
)

func (app *App) newSystemCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "system",
		Short: "Host integration helpers",
	}
	cmd.AddCommand(app.newSystemSudoersCommand())
	cmd.AddCommand(app.newSystemSetupCommand())
	return cmd
}

func (app *App) newSystemSudoersCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "sudoers",
		Short: "Print the exact-command sudoers rules a non-root user needs",
		Long: `Print sudoers rules that let bangerd run, through sudo -n, exactly the
privileged commands it needs (NOPASSWD, NOSETENV, absolute paths) and
nothing else. Install them with:

  banger system sudoers | sudo tee /etc/sudoers.d/banger
  sudo chmod 0440 /etc/sudoers.d/banger && sudo visudo -c

Creating the bridge and TAP devices uses netlink, which sudo cannot grant
per command: run bangerd with CAP_NET_ADMIN instead
(sudo setcap cap_net_admin+ep "$(command -v bangerd)").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := app.config()
			if err != nil {
				return err
			}
			name := "USER"
			if u, err := user.Current(); err == nil {
				name = u.Username
			}
			vmm, _ := preflight.ResolveVMM(cfg.VMM)
			return writeSudoers(app.Stdout, name, os.Getuid(), os.Getgid(), cfg.Paths.RuntimeDir, vmm, cfg.VMMSudo)
		},
	}
}

// sudoersCommands lists the privileged argv patterns bangerd runs.
func sudoersCommands(uid, gid int, runtimeDir, vmm string, vmmSudo bool) []string {
	abs := func(name string) string {
		if p, err := system.LookPath(name); err == nil {
			return p
		}
		return filepath.Join("/usr/sbin", name)
	}
	cmds := []string{
		abs("iptables") + " --version",
		abs("iptables-nft-save"), abs("iptables-legacy-save"),
		abs("iptables-nft-restore") + " --noflush --wait 5",
		abs("iptables-legacy-restore") + " --noflush --wait 5",
		abs("sysctl") + " -w net.ipv4.ip_forward=1",
		fmt.Sprintf("%s %d\\:%d %s/vms/*", abs("chown"), uid, gid, runtimeDir),
		abs("kill") + " -s TERM -- *",
		abs("kill") + " -s KILL -- *",
		abs("mmdebstrap") + " *",
	}
	if vmmSudo {
		cmds = append(cmds, vmm+" --api-sock * --id *")
	}
	return cmds
}

func writeSudoers(w io.Writer, userName string, uid, gid int, runtimeDir, vmm string, vmmSudo bool) error {
	cmds := sudoersCommands(uid, gid, runtimeDir, vmm, vmmSudo)
	var b strings.Builder
	b.WriteString("# banger: the exact commands bangerd runs through `sudo -n`.\n")
	b.WriteString("# Install: banger system sudoers | sudo tee /etc/sudoers.d/banger && sudo chmod 0440 /etc/sudoers.d/banger\n")
	b.WriteString("Cmnd_Alias BANGER = \\\n")
	for i, c := range cmds {
		sep := ", \\\n"
		if i == len(cmds)-1 {
			sep = "\n"
		}
		b.WriteString("    " + c + sep)
	}
	fmt.Fprintf(&b, "%s ALL=(root) NOPASSWD:NOSETENV: BANGER\n", userName)
	_, err := io.WriteString(w, b.String())
	return err
}
