package daemon_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"banger/internal/api"
	"banger/internal/daemon"
	"banger/internal/daemon/daemontest"
	"banger/internal/vm"
)

// findingKeys renders findings as "problem kind name" lines, sorted.
func findingKeys(fs []api.Finding) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, f.Problem+" | "+f.Kind+" | "+f.Name)
	}
	sort.Strings(out)
	return out
}

// TestSystemCheckFindsAndFixes: system check lists every leftover and
// everything missing, and nothing on a clean host; --fix repairs what can
// be repaired and reports what cannot.
func TestSystemCheckFindsAndFixes(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, func(c *daemon.Config, _ *daemon.Deps) { c.ReconcileInterval = "1h" })
	inst.AddImage(t, "base")
	vmIn(t, inst, "up", vm.Running)
	vmIn(t, inst, "down", vm.Stopped)
	rep, err := inst.Client.Check(ctx, false)
	if err != nil || len(rep.Findings) != 0 {
		t.Fatalf("check of a clean host = %+v, %v", rep, err)
	}

	st := inst.Daemon.Store()
	up, _ := st.VM(ctx, "up")
	down, _ := st.VM(ctx, "down")
	p := inst.Paths
	// Leftovers.
	inst.Host.AddStrayTAP("bg-stray00000")
	rowless := filepath.Join(p.DataDir, "vms", "ffffffffff")
	staleSocket := down.Socket + ".qmp"
	orphanSocket := p.VMSocket("eeeeeeeeee")
	imageDir := filepath.Join(p.ImagesDir(), "gone-0123456789")
	stage := filepath.Join(p.ImagesDir(), ".build-42")
	for _, d := range []string{rowless, imageDir, stage, filepath.Dir(staleSocket)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(staleSocket, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	orphan := inst.Host.StartOrphanVMM(orphanSocket)
	// Missing: the running VM's VMM died; the stopped VM lost its work disk.
	inst.Host.KillVMM(up.Process.PID)
	if err := os.Remove(down.WorkDisk()); err != nil {
		t.Fatal(err)
	}

	rep, err = inst.Client.Check(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"missing | vmm process | up",
		"missing | work disk | down",
		"no owner | image directory | " + imageDir,
		"no owner | image stage | " + stage,
		"no owner | socket | " + staleSocket,
		"no owner | tap | bg-stray00000",
		"no owner | vm file | " + rowless,
		"no owner | vmm process | " + strconv.Itoa(orphan),
	}
	sort.Strings(want)
	if diff := cmp.Diff(want, findingKeys(rep.Findings)); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}

	rep, err = inst.Client.Check(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"missing | work disk | down"}, findingKeys(rep.Findings)); diff != "" {
		t.Errorf("findings after --fix (-want +got):\n%s", diff)
	}
	if len(rep.Fixed) != len(want)-1 {
		t.Errorf("fixed %d of %d: %v", len(rep.Fixed), len(want)-1, findingKeys(rep.Fixed))
	}
	for _, path := range []string{rowless, imageDir, stage, staleSocket} {
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("%s survived --fix: %v", path, err)
		}
	}
	if got, _ := inst.Client.VM(ctx, "up"); got.State != "stopped" {
		t.Errorf("vm whose VMM died is %s after --fix, want stopped", got.State)
	}
	// The VMs keep their disks; no TAP or VMM is left.
	for _, line := range strings.Split(inst.Host.State(), "\n") {
		if line != "" && !strings.HasPrefix(line, "disk ") {
			t.Errorf("left on the host after --fix: %s", line)
		}
	}
}

// A thousand VMs in the database: listing, reconcile and system check
// handle them all.
func TestAThousandVMs(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, func(c *daemon.Config, _ *daemon.Deps) { c.ReconcileInterval = "1h" })
	img := inst.AddImage(t, "base")
	st := inst.Daemon.Store()
	for i := 0; i < 1000; i++ {
		id := fmt.Sprintf("%010x", i+1)
		v := &vm.VM{ID: id, Name: fmt.Sprintf("vm%04d", i), State: vm.Stopped, ImageID: img.ID, ImageName: img.Name, CPUs: 1, MemoryMiB: 256,
			IP: netip.AddrFrom4([4]byte{10, 214, byte(i >> 8), byte(i)}), TAP: "bg-" + id, Dir: inst.Paths.VMDataDir(id),
			StateDir: inst.Paths.VMStateDir(id), Socket: inst.Paths.VMSocket(id), Layout: vm.Clone, CreatedAt: time.Now()}
		if err := os.MkdirAll(v.Dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(v.RootDisk(), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateVM(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	vms, err := inst.Client.VMs(ctx, true)
	if err != nil || len(vms) != 1000 {
		t.Fatalf("listing a thousand vms: %d, %v", len(vms), err)
	}
	if err := inst.Daemon.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := inst.Client.Check(ctx, false)
	if err != nil || len(rep.Findings) != 0 {
		t.Errorf("check of a thousand vms: %v, %v", findingKeys(rep.Findings), err)
	}
	if _, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "one-more", Image: "base", NoStart: true}, nil); err != nil {
		t.Errorf("creating the 1,001st vm: %v", err)
	}
}
