package preflight

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"banger/internal/api"
	"banger/internal/system"
)

// Config names what the checks look for.
type Config struct {
	// VMMBinary is the resolved VMM program and VMMKind "firecracker" or "qemu".
	VMMBinary string
	VMMKind   string
	// LookPath and Stat are injectable for tests; nil means the real ones.
	LookPath func(string) (string, error)
	Stat     func(string) (os.FileInfo, error)
	Euid     func() int
}

// Checker runs the checks.
type Checker struct{ cfg Config }

// New returns a Checker.
func New(cfg Config) *Checker {
	if cfg.LookPath == nil {
		cfg.LookPath = system.LookPath
	}
	if cfg.Stat == nil {
		cfg.Stat = os.Stat
	}
	if cfg.Euid == nil {
		cfg.Euid = os.Geteuid
	}
	return &Checker{cfg: cfg}
}

// Problem is one failed check with its fix.
type Problem struct {
	What string `json:"what"`
	Fix  string `json:"fix"`
}

// tool returns a problem when a program is missing.
func (c *Checker) tool(name, pkg string) *Problem {
	if _, err := c.cfg.LookPath(name); err != nil {
		return &Problem{What: name + " is not installed", Fix: "sudo apt-get install " + pkg}
	}
	return nil
}

// Problems lists what op needs and the host lacks. Known ops: "vm create",
// "vm start", "disk growth", "nat", "image bootstrap".
func (c *Checker) Problems(op string) []Problem {
	var ps []*Problem
	switch op {
	case "vm create":
		ps = append(ps, c.tool("mkfs.ext4", "e2fsprogs"), c.tool("debugfs", "e2fsprogs"))
	case "vm start":
		ps = append(ps, c.tool("mkfs.ext4", "e2fsprogs"), c.tool("debugfs", "e2fsprogs"))
		ps = append(ps, c.vmm()...)
		ps = append(ps, c.network()...)
	case "disk growth":
		ps = append(ps, c.tool("e2fsck", "e2fsprogs"), c.tool("resize2fs", "e2fsprogs"))
	case "nat":
		ps = append(ps, c.network()...)
	case "image bootstrap":
		ps = append(ps, c.tool("mmdebstrap", "mmdebstrap"), c.tool("mkfs.ext4", "e2fsprogs"))
	}
	var out []Problem
	for _, p := range ps {
		if p != nil {
			out = append(out, *p)
		}
	}
	return out
}

func (c *Checker) vmm() []*Problem {
	var ps []*Problem
	if c.cfg.VMMBinary == "" {
		return []*Problem{{What: "no VMM is configured", Fix: "set vmm = \"auto\" in the config file"}}
	}
	if _, err := c.cfg.LookPath(c.cfg.VMMBinary); err != nil {
		if _, serr := c.cfg.Stat(c.cfg.VMMBinary); serr != nil {
			fix := "install Firecracker (https://github.com/firecracker-microvm/firecracker/releases) or set vmm = \"banger-vmm-qemu\""
			if c.cfg.VMMKind == "qemu" {
				fix = "install banger-vmm-qemu beside bangerd (`make install`)"
			}
			ps = append(ps, &Problem{What: "the VMM " + c.cfg.VMMBinary + " was not found", Fix: fix})
		}
	}
	if c.cfg.VMMKind == "qemu" {
		ps = append(ps, c.tool("qemu-system-x86_64", "qemu-system-x86"))
	} else if err := KVMUsable(); err != nil {
		ps = append(ps, &Problem{What: "Firecracker needs KVM: " + err.Error(), Fix: "set vmm = \"auto\" or \"banger-vmm-qemu\" to run guests under QEMU"})
	}
	return ps
}

func (c *Checker) network() []*Problem {
	var ps []*Problem
	if _, err := c.cfg.Stat("/dev/net/tun"); err != nil {
		ps = append(ps, &Problem{What: "/dev/net/tun is missing, so TAP devices cannot be made", Fix: "sudo modprobe tun"})
	}
	ps = append(ps, c.tool("iptables", "iptables"))
	if c.cfg.Euid() != 0 {
		ps = append(ps, &Problem{What: "bangerd is not root, and creating bridges and TAPs needs CAP_NET_ADMIN",
			Fix: "run bangerd as root, or `sudo setcap cap_net_admin+ep $(command -v bangerd)`"})
	}
	return ps
}

// Check implements the daemon's preflight: nil, or one precondition error
// listing every problem and its fix.
func (c *Checker) Check(_ context.Context, op string) error {
	ps := c.Problems(op)
	if len(ps) == 0 {
		return nil
	}
	var what, fixes []string
	for _, p := range ps {
		what = append(what, p.What)
		fixes = append(fixes, p.Fix)
	}
	return &api.Error{Code: api.CodePrecondition,
		Message: fmt.Sprintf("cannot %s: %s", op, strings.Join(what, "; ")),
		Hint:    strings.Join(fixes, "; ") + " (`banger doctor` checks everything)"}
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
