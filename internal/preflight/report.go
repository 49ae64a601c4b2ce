package preflight

import (
	"context"
	"fmt"
	"strings"

	"banger/internal/api"
	"banger/internal/vm"
)

// Report runs every check of every operation once, then the host facts
// that no operation requires but that shape how banger runs (KVM, IP
// forwarding, reflinks, free space, cgroups, the OpenSSH client). A failed
// check names the operations it blocks.
func (c *Checker) Report(ctx context.Context) []api.Check {
	fresh := *c
	fresh.fresh = true
	return fresh.report(ctx)
}

func (c *Checker) report(ctx context.Context) []api.Check {
	var out []api.Check
	out = append(out, c.kvm())
	seen := map[string]bool{}
	for _, op := range Ops() {
		for _, ck := range needs[op].checks {
			if seen[ck.name] {
				continue
			}
			seen[ck.name] = true
			r := ck.run(c, ctx)
			if r.Status == api.CheckFail {
				by := neededBy(ck.name)
				r.Detail += " (needed by " + strings.Join(by, ", ") + ")"
				if why, ok := c.onlyOptional(by); ok {
					r.Status, r.Detail = api.CheckWarn, r.Detail+"; "+why
				}
			}
			out = append(out, r)
		}
	}
	return append(out, c.ipForward(), c.reflink(), c.space(), c.cgroups(), c.sshClient())
}

func (c *Checker) kvm() api.Check {
	if err := c.cfg.KVM(); err != nil {
		return warn("kvm", err.Error(), "guests run under QEMU software emulation (slower); for KVM, load kvm_intel/kvm_amd and give the user access to /dev/kvm")
	}
	return ok("kvm", "/dev/kvm can run guests")
}

func (c *Checker) ipForward() api.Check {
	if b, err := c.cfg.ReadFile("/proc/sys/net/ipv4/ip_forward"); err == nil && strings.TrimSpace(string(b)) == "1" {
		return ok("ip_forward", "net.ipv4.ip_forward = 1")
	}
	return ok("ip_forward", "net.ipv4.ip_forward = 0; bangerd turns it on when it starts the first VM")
}

func (c *Checker) reflink() api.Check {
	dir := c.cfg.DataDir
	if c.cfg.Reflink == nil || dir == "" {
		return warn("reflink", "not checked", "")
	}
	switch yes, err := c.cfg.Reflink(dir); {
	case err != nil:
		return warn("reflink", err.Error(), "")
	case yes:
		return ok("reflink", dir+" supports reflinks: a new VM's root is an instant copy-on-write clone of its image; image build and commit are instant too")
	}
	return ok("reflink", dir+" has no reflinks: a new VM's root is a sparse layer over its image, shared read-only (overlayfs); image build and commit copy the image")
}

func (c *Checker) space() api.Check {
	free, err := c.cfg.FreeBytes(c.cfg.DataDir)
	switch {
	case err != nil:
		return warn("disk space", err.Error(), "")
	case free < 5<<30:
		return warn("disk space", fmt.Sprintf("%s free in %s", vm.FormatSize(free), c.cfg.DataDir), "free some space: images take about 1 GiB, each VM its changed blocks")
	}
	return ok("disk space", fmt.Sprintf("%s free in %s", vm.FormatSize(free), c.cfg.DataDir))
}

func (c *Checker) cgroups() api.Check {
	if _, err := c.cfg.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
		return warn("cgroup v2", "cgroup v2 is not mounted (banger does not need it yet; resource limits will)", "boot with systemd.unified_cgroup_hierarchy=1")
	}
	return ok("cgroup v2", "unified hierarchy mounted")
}

func (c *Checker) sshClient() api.Check {
	if _, err := c.cfg.LookPath("ssh"); err != nil {
		return fail("ssh", "the OpenSSH client is missing (banger vm ssh hands off to it)", "sudo apt-get install openssh-client")
	}
	return ok("ssh", "OpenSSH client installed")
}

// onlyOptional reports whether every operation in ops is one the host can
// do without, and why.
func (c *Checker) onlyOptional(ops []string) (string, bool) {
	var why []string
	for _, op := range ops {
		w, ok := c.cfg.Optional[Op(op)]
		if !ok {
			return "", false
		}
		why = append(why, w)
	}
	return strings.Join(why, "; "), len(why) > 0
}
