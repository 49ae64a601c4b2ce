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

// Op is an operation whose host prerequisites are checked before it runs.
type Op string

// The checked operations. Each names the daemon layers and the host tools
// it needs; an operation that does several things checks each of them
// (a create that grows its root disk checks CreateVM and GrowDisk).
const (
	CreateVM       Op = "vm create"
	StartVM        Op = "vm start"
	GrowDisk       Op = "disk growth"
	CommitImage    Op = "image commit"
	BuildImage     Op = "image build"
	BootstrapImage Op = "image bootstrap"
)

// Ops lists every checked operation.
func Ops() []Op {
	return []Op{CreateVM, StartVM, GrowDisk, CommitImage, BuildImage, BootstrapImage}
}

// Layer is one of the daemon's host layers an operation needs.
type Layer string

// The daemon's host layers.
const (
	Disks     Layer = "disks"
	Network   Layer = "network"
	VMM       Layer = "vmm"
	Guest     Layer = "guest"
	Bootstrap Layer = "bootstrap"
)

// needs is what each operation needs: the daemon layers and the host
// checks. The doctor runs the union of the checks.
var needs = map[Op]struct {
	layers []Layer
	checks []check
}{
	CreateVM:       {[]Layer{Disks}, []check{mkfs, debugfs}},
	StartVM:        {[]Layer{Disks, Network, VMM}, []check{vmmCheck, tun, iptables, netAdmin}},
	GrowDisk:       {[]Layer{Disks}, []check{e2fsck, resize2fs}},
	CommitImage:    {[]Layer{Disks}, []check{e2fsck, debugfs}},
	BuildImage:     {[]Layer{Disks, Network, VMM, Guest}, []check{mkfs, debugfs, vmmCheck, tun, iptables, netAdmin, e2fsck}},
	BootstrapImage: {[]Layer{Bootstrap}, []check{mmdebstrap, mkfs}},
}

// Layers lists the daemon layers op needs.
func (op Op) Layers() []Layer { return needs[op].layers }

// check is one host prerequisite.
type check func(c *Checker) []*Problem

func toolCheck(name, pkg string) check {
	return func(c *Checker) []*Problem { return []*Problem{c.tool(name, pkg)} }
}

var (
	mkfs       = toolCheck("mkfs.ext4", "e2fsprogs")
	debugfs    = toolCheck("debugfs", "e2fsprogs")
	e2fsck     = toolCheck("e2fsck", "e2fsprogs")
	resize2fs  = toolCheck("resize2fs", "e2fsprogs")
	mmdebstrap = toolCheck("mmdebstrap", "mmdebstrap")
	iptables   = toolCheck("iptables", "iptables")
	vmmCheck   = (*Checker).vmm
	tun        = (*Checker).tun
	netAdmin   = (*Checker).netAdmin
)

// Problems lists what the operations need and the host lacks, each
// problem once.
func (c *Checker) Problems(ops ...Op) []Problem {
	var out []Problem
	seen := map[string]bool{}
	for _, op := range ops {
		for _, ck := range needs[op].checks {
			for _, p := range ck(c) {
				if p != nil && !seen[p.What] {
					seen[p.What] = true
					out = append(out, *p)
				}
			}
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

func (c *Checker) tun() []*Problem {
	if _, err := c.cfg.Stat("/dev/net/tun"); err != nil {
		return []*Problem{{What: "/dev/net/tun is missing, so TAP devices cannot be made", Fix: "sudo modprobe tun"}}
	}
	return nil
}

func (c *Checker) netAdmin() []*Problem {
	if c.cfg.Euid() != 0 {
		return []*Problem{{What: "bangerd is not root, and creating bridges and TAPs needs CAP_NET_ADMIN",
			Fix: "run bangerd as root, or `sudo setcap cap_net_admin+ep $(command -v bangerd)`"}}
	}
	return nil
}

// Check implements the daemon's preflight: nil, or one precondition error
// naming the first operation and listing every problem and its fix.
func (c *Checker) Check(_ context.Context, ops ...Op) error {
	ps := c.Problems(ops...)
	if len(ps) == 0 {
		return nil
	}
	var what, fixes []string
	for _, p := range ps {
		what = append(what, p.What)
		fixes = append(fixes, p.Fix)
	}
	return &api.Error{Code: api.CodePrecondition,
		Message: fmt.Sprintf("cannot %s: %s", ops[0], strings.Join(what, "; ")),
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
