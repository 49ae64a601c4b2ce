package preflight

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"

	"banger/internal/api"
)

func fakeHost(have map[string]bool, root bool) Config {
	return Config{
		VMMBinary: "/usr/bin/banger-vmm-qemu", VMMKind: "qemu", DataDir: "/data",
		LookPath: func(n string) (string, error) {
			if have[n] {
				return "/usr/bin/" + n, nil
			}
			return "", errors.New("not found")
		},
		Stat: func(p string) (os.FileInfo, error) {
			if have[p] {
				return nil, nil
			}
			return nil, fs.ErrNotExist
		},
		Euid: func() int {
			if root {
				return 0
			}
			return 1000
		},
		Output:    func(context.Context, ...string) ([]byte, error) { return []byte("iptables v1.8.9 (nf_tables)\n"), nil },
		ReadFile:  func(string) ([]byte, error) { return []byte("0\n"), nil },
		Reflink:   func(string) (bool, error) { return false, nil },
		FreeBytes: func(string) (int64, error) { return 80 << 30, nil },
		KVM:       func() error { return errors.New("/dev/kvm does not exist") },
	}
}

var complete = map[string]bool{"newuidmap": true, "newgidmap": true, "unshare": true, "mkfs.ext4": true, "debugfs": true, "e2fsck": true, "resize2fs": true, "mmdebstrap": true,
	"/usr/bin/banger-vmm-qemu": true, "qemu-system-x86_64": true, "/dev/net/tun": true, "iptables": true, "ssh": true,
	"/sys/fs/cgroup/cgroup.controllers": true}

func TestCheckPassesOnACompleteHost(t *testing.T) {
	for _, op := range Ops() {
		if err := New(fakeHost(complete, true)).Check(context.Background(), op); err != nil {
			t.Errorf("complete host, %s: %v", op, err)
		}
	}
}

func TestCheckNamesEveryMissingPieceAndItsFix(t *testing.T) {
	have := map[string]bool{"mkfs.ext4": true, "debugfs": true, "/dev/net/tun": true}
	err := New(fakeHost(have, false)).Check(context.Background(), StartVM)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodePrecondition {
		t.Fatalf("err = %v, want a precondition error", err)
	}
	for _, want := range []string{"cannot vm start", "banger-vmm-qemu was not found", "iptables is not installed", "bangerd is not root"} {
		if !strings.Contains(ae.Message, want) {
			t.Errorf("message %q lacks %q", ae.Message, want)
		}
	}
	for _, want := range []string{"make install", "apt-get install iptables", "sudo banger system setup"} {
		if !strings.Contains(ae.Hint, want) {
			t.Errorf("hint %q lacks %q", ae.Hint, want)
		}
	}
}

func TestOpsCheckOnlyWhatTheyNeed(t *testing.T) {
	ctx := context.Background()
	c := New(fakeHost(map[string]bool{"e2fsck": true}, false))
	// Growing a disk needs resize2fs and e2fsck, and nothing of the network.
	ps := c.Problems(ctx, GrowDisk)
	if len(ps) != 1 || !strings.Contains(ps[0].What, "resize2fs") || !strings.Contains(ps[0].Fix, "e2fsprogs") {
		t.Errorf("disk growth problems = %v, want resize2fs alone", ps)
	}
	if ps := c.Problems(ctx, BootstrapImage); len(ps) != 4 || !strings.Contains(ps[0].Fix, "mmdebstrap") || !strings.Contains(ps[3].Fix, "uidmap") {
		t.Errorf("image bootstrap problems = %v", ps)
	}
	// Several operations name a shared problem once.
	if ps := c.Problems(ctx, CreateVM, BuildImage, BootstrapImage); countWhat(ps, "mkfs.ext4 is not installed") != 1 {
		t.Errorf("shared problem not listed once: %v", ps)
	}
}

func countWhat(ps []Problem, what string) int {
	n := 0
	for _, p := range ps {
		if p.What == what {
			n++
		}
	}
	return n
}

func TestEveryOpDeclaresLayersAndChecks(t *testing.T) {
	for _, op := range Ops() {
		if len(op.Layers()) == 0 || len(needs[op].checks) == 0 {
			t.Errorf("%s declares layers %v and %d checks", op, op.Layers(), len(needs[op].checks))
		}
	}
}

func TestReportListsEachCheckOnceAndNamesWhatAFailureBlocks(t *testing.T) {
	have := map[string]bool{}
	for k, v := range complete {
		have[k] = v
	}
	delete(have, "resize2fs")
	delete(have, "iptables")
	checks := New(fakeHost(have, true)).Report(context.Background())
	names := map[string]int{}
	byName := map[string]api.Check{}
	for _, c := range checks {
		names[c.Name]++
		byName[c.Name] = c
	}
	for n, k := range names {
		if k != 1 {
			t.Errorf("check %s listed %d times", n, k)
		}
	}
	if c := byName["resize2fs"]; c.Status != api.CheckFail || !strings.Contains(c.Detail, "disk growth") || c.Fix == "" {
		t.Errorf("resize2fs = %+v, want a failure naming disk growth with a fix", c)
	}
	if c := byName["iptables"]; c.Status != api.CheckFail || !strings.Contains(c.Detail, "vm start") || !strings.Contains(c.Detail, "image build") {
		t.Errorf("iptables = %+v, want a failure naming vm start and image build", c)
	}
	for _, n := range []string{"kvm", "vmm", "mkfs.ext4", "privileges", "ip_forward", "reflink", "disk space", "cgroup v2", "ssh"} {
		if _, ok := byName[n]; !ok {
			t.Errorf("report lacks %s: %v", n, checks)
		}
	}
	if c := byName["kvm"]; c.Status != api.CheckWarn {
		t.Errorf("kvm without /dev/kvm = %+v, want a warning (QEMU runs guests)", c)
	}
}

// TestOptionalOperationsOnlyWarn: with a runtime bundle's image, a tool
// only image bootstrap needs is a warning, one other operations need stays
// a failure, and the operation itself still refuses.
func TestOptionalOperationsOnlyWarn(t *testing.T) {
	have := map[string]bool{}
	for k, v := range complete {
		have[k] = v
	}
	delete(have, "mmdebstrap")
	delete(have, "mkfs.ext4")
	cfg := fakeHost(have, true)
	cfg.Optional = map[Op]string{BootstrapImage: "the bundle stands in"}
	c := New(cfg)
	byName := map[string]api.Check{}
	for _, ck := range c.Report(context.Background()) {
		byName[ck.Name] = ck
	}
	if ck := byName["mmdebstrap"]; ck.Status != api.CheckWarn || !strings.Contains(ck.Detail, "the bundle stands in") {
		t.Errorf("mmdebstrap = %+v, want a warning saying why", ck)
	}
	if ck := byName["mkfs.ext4"]; ck.Status != api.CheckFail {
		t.Errorf("mkfs.ext4 = %+v, want a failure: vm create needs it too", ck)
	}
	if err := c.Check(context.Background(), BootstrapImage); err == nil || !strings.Contains(err.Error(), "mmdebstrap") {
		t.Errorf("image bootstrap without mmdebstrap: %v", err)
	}
}

// TestPrivilegesAskTheSetup: a user's daemon is ready when its helper
// answers; the doctor asks afresh, operations may use a cached answer.
func TestPrivilegesAskTheSetup(t *testing.T) {
	ctx := context.Background()
	cfg := fakeHost(complete, false)
	var fresh []bool
	answer := errors.New("sudo does not allow the banger helper")
	cfg.Setup = func(_ context.Context, f bool) error {
		fresh = append(fresh, f)
		return answer
	}
	c := New(cfg)
	err := c.Check(ctx, StartVM)
	if err == nil || !strings.Contains(err.Error(), "sudo does not allow") || !strings.Contains(err.(*api.Error).Hint, "sudo banger system setup") {
		t.Errorf("start without setup: %v", err)
	}
	answer = nil
	if err := c.Check(ctx, StartVM); err != nil {
		t.Errorf("start after setup: %v", err)
	}
	for _, r := range c.Report(ctx) {
		if r.Name == "privileges" && r.Status != api.CheckOK {
			t.Errorf("privileges after setup: %+v", r)
		}
	}
	if len(fresh) != 3 || fresh[0] || fresh[1] || !fresh[2] {
		t.Errorf("setup asked with fresh = %v, want false, false, true (the report)", fresh)
	}
}
