package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"banger/internal/api"
	"banger/internal/disk"
	"banger/internal/firecracker"
	"banger/internal/preflight"
	"banger/internal/system"
)

// doctorCheck is one line of `banger doctor`.
type doctorCheck struct {
	Name   string `json:"name"`
	Status string `json:"status"` // ok, warn or fail
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

func (app *App) newDoctorCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the host for everything banger needs, and say how to fix what is missing",
		Long: `Run every preflight check plus host checks: KVM (and why it cannot be used),
the VMM binary and its version, QEMU for the fallback, IP forwarding, the
iptables backend, reflink support of the data directory, free disk space,
cgroup v2, sudo rules when not root, and the daemon. Each failing line says
how to fix it. The exit status is 1 when a check fails (warnings do not).

With vmm = "auto" (the default), banger uses Firecracker when KVM can run it
and banger-vmm-qemu (QEMU, KVM or software emulation) otherwise; doctor says
which one it picked and why.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runDoctor(cmd.Context(), cmd, output)
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func (app *App) runDoctor(ctx context.Context, cmd *cobra.Command, output string) error {
	if err := checkOutput(cmd, output); err != nil {
		return err
	}
	cfg, err := app.config()
	if err != nil {
		return err
	}
	checks := app.doctorChecks(ctx)
	failed := false
	for _, c := range checks {
		failed = failed || c.Status == "fail"
	}
	if output == "json" {
		if err := writeJSON(app.Stdout, checks); err != nil {
			return err
		}
	} else {
		t := newTable(app.Stdout, "CHECK", "STATUS", "DETAIL")
		for _, c := range checks {
			t.row(c.Name, c.Status, c.Detail)
			if c.Fix != "" && c.Status != "ok" {
				t.row("", "", "fix: "+c.Fix)
			}
		}
		if err := t.flush(); err != nil {
			return err
		}
		fmt.Fprintf(app.Stdout, "\nconfig: %s\n", cfg.Paths.ConfigFile)
	}
	if failed {
		return &exitError{code: 1}
	}
	return nil
}

func (app *App) doctorChecks(ctx context.Context) []doctorCheck {
	cfg := app.cfg
	var checks []doctorCheck
	add := func(name, status, detail, fix string) {
		checks = append(checks, doctorCheck{Name: name, Status: status, Detail: detail, Fix: fix})
	}

	kvmErr := preflight.KVMUsable()
	if kvmErr == nil {
		add("kvm", "ok", "/dev/kvm can run guests", "")
	} else {
		add("kvm", "warn", kvmErr.Error(), "guests run under QEMU software emulation (slower); for KVM, load kvm_intel/kvm_amd and give the user access to /dev/kvm")
	}

	binary, kind := preflight.ResolveVMM(cfg.VMM)
	why := ""
	if (cfg.VMM == "auto" || cfg.VMM == "") && kind == "qemu" {
		why = " (Firecracker cannot run here"
		if _, err := system.LookPath("firecracker"); err != nil {
			why += ": it is not installed"
		} else if kvmErr != nil {
			why += ": " + kvmErr.Error()
		}
		why += ")"
	}
	vctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	info, verr := firecracker.New(firecracker.Deps{}).Version(vctx, binary)
	cancel()
	if verr != nil {
		add("vmm", "fail", fmt.Sprintf("%s: %v", binary, verr), "install banger-vmm-qemu beside bangerd (`make install`) or Firecracker, or set vmm in the config")
	} else {
		add("vmm", "ok", fmt.Sprintf("%s (%s)%s", binary, info, why), "")
	}

	if _, err := system.LookPath("qemu-system-x86_64"); err != nil {
		status := "warn"
		if kind == "qemu" {
			status = "fail"
		}
		add("qemu", status, "qemu-system-x86_64 is not installed (needed by banger-vmm-qemu)", "sudo apt-get install qemu-system-x86")
	} else {
		add("qemu", "ok", "qemu-system-x86_64 installed", "")
	}

	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); err == nil && strings.TrimSpace(string(b)) == "1" {
		add("ip_forward", "ok", "net.ipv4.ip_forward = 1", "")
	} else {
		add("ip_forward", "ok", "net.ipv4.ip_forward = 0; bangerd turns it on when it starts the first VM", "")
	}

	if p, err := system.LookPath("iptables"); err != nil {
		add("iptables", "fail", "iptables is not installed", "sudo apt-get install iptables")
	} else if out, err := system.Plain().Output(ctx, p, "--version"); err == nil {
		add("iptables", "ok", strings.TrimSpace(string(out)), "")
	} else {
		add("iptables", "warn", err.Error(), "")
	}

	dataDir := cfg.Paths.DataDir
	_ = os.MkdirAll(dataDir, 0o700)
	if ok, err := disk.ReflinkSupported(dataDir); err != nil {
		add("reflink", "warn", err.Error(), "")
	} else if ok {
		add("reflink", "ok", dataDir+" supports reflinks: root disks are instant copy-on-write clones", "")
	} else {
		add("reflink", "warn", dataDir+" has no reflink support: root disks are sparse copies (slower, not shared)", "put $XDG_DATA_HOME on XFS (reflink=1) or btrfs for instant clones")
	}

	var st syscall.Statfs_t
	if err := syscall.Statfs(dataDir, &st); err == nil {
		free := int64(st.Bavail) * st.Bsize
		if free < 5<<30 {
			add("disk space", "warn", fmt.Sprintf("%s free in %s", humanBytes(free), dataDir), "free some space: images take about 1 GiB, each VM its changed blocks")
		} else {
			add("disk space", "ok", fmt.Sprintf("%s free in %s", humanBytes(free), dataDir), "")
		}
	}

	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		add("cgroup v2", "ok", "unified hierarchy mounted", "")
	} else {
		add("cgroup v2", "warn", "cgroup v2 is not mounted (banger does not need it yet; resource limits will)", "boot with systemd.unified_cgroup_hierarchy=1")
	}

	if os.Geteuid() == 0 {
		add("privileges", "ok", "running as root", "")
	} else if err := system.Plain().Run(ctx, "sudo", "-n", "true"); err == nil {
		add("privileges", "ok", "sudo -n works for this user", "")
	} else {
		add("privileges", "fail", "not root and `sudo -n` is refused: bangerd cannot set up NAT or start a root VMM",
			"banger system sudoers | sudo tee /etc/sudoers.d/banger && sudo chmod 0440 /etc/sudoers.d/banger")
	}

	if _, err := system.LookPath("ssh"); err != nil {
		add("ssh", "fail", "the OpenSSH client is missing (banger vm ssh hands off to it)", "sudo apt-get install openssh-client")
	} else {
		add("ssh", "ok", "OpenSSH client installed", "")
	}

	checker := preflight.New(preflight.Config{VMMBinary: binary, VMMKind: kind})
	seen := map[string]bool{}
	for _, op := range []preflight.Op{preflight.StartVM, preflight.GrowDisk, preflight.BootstrapImage} {
		for _, p := range checker.Problems(op) {
			if seen[p.What] {
				continue
			}
			seen[p.What] = true
			add("preflight "+string(op), "fail", p.What, p.Fix)
		}
	}

	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if st, err := api.NewClient(cfg.Paths.Socket()).Status(sctx); err == nil {
		add("daemon", "ok", fmt.Sprintf("bangerd %s running, pid %d", st.Version, st.PID), "")
		for _, p := range st.Problems {
			add("daemon", "fail", p, "see `banger daemon logs`")
		}
	} else {
		add("daemon", "ok", "not running; banger starts it on demand", "")
	}
	return checks
}
