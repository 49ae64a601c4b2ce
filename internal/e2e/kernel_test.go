package e2e

import (
	"strings"
	"testing"
	"time"

	"banger/internal/bootstrap"
	"banger/internal/testutil"
)

// TestMicrovmKernel is issue 17's microvm kernel as a user meets it, in
// every run of the guest tier whichever kernel the rest of the tier boots:
// an image bootstrapped with --kernel microvm boots to SSH on the kernel
// banger compiled, with its work disk, network and name; `vm stop` powers
// it off through the ACPI power button (no signal needed), and it starts
// again. The first run on a machine compiles the kernel (minutes); later
// runs take it from the test cache.
func TestMicrovmKernel(t *testing.T) {
	e := newGuestEnv(t)
	start := time.Now()
	img := testutil.GuestImageWithKernel(t, bootstrap.KernelMicrovm)
	t.Logf("microvm image %s (kernel %s) in %s", img.Rootfs, img.KernelVersion, time.Since(start).Round(time.Second))
	if out := e.must("image", "bootstrap", "micro", "--kernel", bootstrap.KernelMicrovm); !strings.Contains(out, "-banger-microvm") {
		t.Errorf("image bootstrap --kernel microvm printed %q, want the microvm kernel's release", out)
	}

	start = time.Now()
	e.must("vm", "create", "m", "--image", "micro", "--memory", "512M", "--disk", "64M", "--wait")
	t.Logf("cold vm create --wait on the microvm kernel: %s", time.Since(start).Round(time.Millisecond))
	if got := strings.TrimSpace(e.must("vm", "exec", "m", "--", "uname", "-r")); got != img.KernelVersion || !strings.HasSuffix(got, "-banger-microvm") {
		t.Errorf("the guest runs kernel %q, want the built %q", got, img.KernelVersion)
	}
	// Everything the Debian kernel's modules give the guest is built in:
	// the work disk's ext4 on /work, the root (an overlay of the VM's
	// layer where the data directory cannot reflink), the network.
	got := strings.Fields(e.ssh("m", "findmnt -no FSTYPE /work; findmnt -no FSTYPE /; ip -4 -o addr show eth0 | wc -l; ls /lib/modules 2>/dev/null | wc -l"))
	if len(got) != 4 || got[0] != "ext4" || (got[1] != "overlay" && got[1] != "ext4") || got[2] != "1" || got[3] != "0" {
		t.Errorf("work disk, root, address and modules in the guest: %q, want ext4, overlay or ext4, one address, no module tree", got)
	}
	if boot := e.vm("m").Boot; boot == nil || len(boot.Phases) < 5 {
		t.Errorf("no boot timeline for the microvm boot: %+v", boot)
	}

	// The power button reaches logind: the stop needs no signal.
	_, errOut, code := e.banger("vm", "stop", "m")
	if code != 0 || strings.Contains(errOut, "did not power off") || e.vm("m").Reason != "" {
		t.Errorf("vm stop of the microvm guest: exit %d, reason %q\n%s", code, e.vm("m").Reason, errOut)
	}
	e.must("vm", "start", "m", "--wait")
	if got := e.ssh("m", "echo up"); got != "up" {
		t.Errorf("after a restart the guest answered %q", got)
	}
	e.must("vm", "rm", "--force", "m")
}
