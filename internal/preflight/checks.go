package preflight

import (
	"context"
	"errors"
	"fmt"
	"os"

	"banger/internal/api"
)

// check is one named host prerequisite.
type check struct {
	name string
	run  func(c *Checker, ctx context.Context) api.Check
}

func ok(name, detail string) api.Check {
	return api.Check{Name: name, Status: api.CheckOK, Detail: detail}
}

func fail(name, detail, fix string) api.Check {
	return api.Check{Name: name, Status: api.CheckFail, Detail: detail, Fix: fix}
}

func warn(name, detail, fix string) api.Check {
	return api.Check{Name: name, Status: api.CheckWarn, Detail: detail, Fix: fix}
}

// tool checks that a program is installed.
func tool(name, pkg string) check {
	return check{name: name, run: func(c *Checker, _ context.Context) api.Check {
		p, err := c.cfg.LookPath(name)
		if err != nil {
			return fail(name, name+" is not installed", "sudo apt-get install "+pkg)
		}
		return ok(name, p)
	}}
}

var (
	mkfs       = tool("mkfs.ext4", "e2fsprogs")
	debugfs    = tool("debugfs", "e2fsprogs")
	e2fsck     = tool("e2fsck", "e2fsprogs")
	resize2fs  = tool("resize2fs", "e2fsprogs")
	mmdebstrap = tool("mmdebstrap", "mmdebstrap")
	iptables   = check{name: "iptables", run: (*Checker).iptables}
	vmm        = check{name: "vmm", run: (*Checker).vmm}
	tun        = check{name: "tun", run: (*Checker).tun}
	netAdmin   = check{name: "privileges", run: (*Checker).privileges}
	userns     = check{name: "uidmap", run: (*Checker).uidmap}
)

func (c *Checker) iptables(ctx context.Context) api.Check {
	p, err := c.cfg.LookPath("iptables")
	if err != nil {
		return fail("iptables", "iptables is not installed", "sudo apt-get install iptables")
	}
	out, err := c.cfg.Output(ctx, p, "--version")
	if err != nil {
		return warn("iptables", fmt.Sprintf("%s --version: %v", p, err), "")
	}
	return ok("iptables", firstLine(out))
}

func (c *Checker) vmm(ctx context.Context) api.Check {
	const name = "vmm"
	if c.cfg.VMMBinary == "" {
		return fail(name, "no VMM is configured", "set vmm = \"auto\" in the config file")
	}
	if _, err := c.cfg.LookPath(c.cfg.VMMBinary); err != nil {
		if _, serr := c.cfg.Stat(c.cfg.VMMBinary); serr != nil {
			fix := "install Firecracker (https://github.com/firecracker-microvm/firecracker/releases) or set vmm = \"banger-vmm-qemu\""
			if c.cfg.VMMKind == "qemu" {
				fix = "install banger-vmm-qemu beside bangerd (`make install`)"
			}
			return fail(name, "the VMM "+c.cfg.VMMBinary+" was not found", fix)
		}
	}
	if c.cfg.VMMKind == "qemu" {
		if _, err := c.cfg.LookPath("qemu-system-x86_64"); err != nil {
			return fail(name, "qemu-system-x86_64 is not installed (banger-vmm-qemu runs guests with it)", "sudo apt-get install qemu-system-x86")
		}
	} else if err := c.cfg.KVM(); err != nil {
		return fail(name, "Firecracker needs KVM: "+err.Error(), "set vmm = \"auto\" or \"banger-vmm-qemu\" to run guests under QEMU")
	}
	detail := c.cfg.VMMBinary
	// Asking for the version starts the VMM binary: the doctor does, an
	// operation's check need not.
	if c.cfg.Version != nil && c.fresh {
		v, err := c.cfg.Version(ctx, c.cfg.VMMBinary)
		if err != nil {
			return fail(name, fmt.Sprintf("%s: %v", c.cfg.VMMBinary, err), "install banger-vmm-qemu beside bangerd (`make install`) or Firecracker, or set vmm in the config")
		}
		detail += " (" + v + ")"
	}
	return ok(name, detail+c.cfg.VMMReason)
}

func (c *Checker) tun(context.Context) api.Check {
	if _, err := c.cfg.Stat("/dev/net/tun"); err != nil {
		return fail("tun", "/dev/net/tun is missing, so TAP devices cannot be made", "sudo modprobe tun")
	}
	return ok("tun", "/dev/net/tun present")
}

// privileges checks that the daemon may plumb its network: as root in
// process, as a user through the helper that `sudo banger system setup`
// installed.
func (c *Checker) privileges(ctx context.Context) api.Check {
	const name = "privileges"
	if c.cfg.Euid() == 0 {
		return ok(name, "bangerd runs as root and plumbs its network itself")
	}
	if c.cfg.Setup == nil {
		return fail(name, "bangerd is not root and has no helper for its network", "run `sudo banger system setup` once for this user")
	}
	if err := c.cfg.Setup(ctx, c.fresh); err != nil {
		return fail(name, err.Error(), "run `sudo banger system setup` once for this user")
	}
	return ok(name, "bangerd runs as you; the banger helper changes your bridge, TAPs and NAT through sudo")
}

// uidmap checks what an image bootstrap without root needs: newuidmap and
// newgidmap, which map the subordinate ids into its user namespace.
func (c *Checker) uidmap(context.Context) api.Check {
	const name = "uidmap"
	if c.cfg.Euid() == 0 {
		return ok(name, "not needed: bangerd runs as root")
	}
	for _, tool := range []string{"newuidmap", "newgidmap", "unshare"} {
		if _, err := c.cfg.LookPath(tool); err != nil {
			pkg := "uidmap"
			if tool == "unshare" {
				pkg = "util-linux"
			}
			return fail(name, tool+" is not installed (image bootstraps run in a user namespace)", "sudo apt-get install "+pkg)
		}
	}
	return ok(name, "newuidmap and newgidmap installed")
}

// KVMUsable reports why KVM cannot run a stock guest kernel, or nil. A
// PVM-only /dev/kvm (the kvm_pvm module) exists but cannot run one.
func KVMUsable() error {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return errors.New("/dev/kvm does not exist (no KVM on this host, or the kvm module is not loaded)")
	case errors.Is(err, os.ErrPermission):
		return errors.New("/dev/kvm is not accessible to this user (add the user to the kvm group)")
	case err != nil:
		return fmt.Errorf("opening /dev/kvm: %w", err)
	}
	f.Close()
	if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil {
		return errors.New("/dev/kvm is provided by kvm_pvm (PVM), which cannot run a stock guest kernel")
	}
	return nil
}

func firstLine(b []byte) string {
	for i, c := range b {
		if c == '\n' {
			return string(b[:i])
		}
	}
	return string(b)
}
