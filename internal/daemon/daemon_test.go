package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"banger/internal/api"
	"banger/internal/config"
	"banger/internal/daemon"
	"banger/internal/daemon/daemontest"
	"banger/internal/vm"
)

func TestLifecycleThroughAPI(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	c := inst.Client

	var steps []string
	v, _, err := c.CreateVM(ctx, api.CreateVMRequest{Name: "dev", Image: "base", CPUs: 2, MemoryMiB: 512, DiskBytes: 1 << 30, WaitSSH: true}, func(p api.Progress) {
		if !p.Finished {
			steps = append(steps, p.Step)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	wantSteps := []string{"record", "dirs", "workdisk", "layer", "identity", "starting", "network", "tap", "boot", "forwards", "ssh", "init"}
	if diff := cmp.Diff(wantSteps, dedupe(steps)); diff != "" {
		t.Errorf("progress steps (-want +got):\n%s", diff)
	}
	if v.State != "running" || v.IP == "" || v.DNSName != "dev.vm" || v.PID == 0 {
		t.Errorf("created vm = %+v", v)
	}
	if got := inst.Host.State(); !strings.Contains(got, "tap bg-"+v.ID) || !strings.Contains(got, "dns dev "+v.IP) {
		t.Errorf("host state after create:\n%s", got)
	}

	list, err := c.VMs(ctx, false)
	if err != nil || len(list) != 1 || list[0].Name != "dev" {
		t.Fatalf("list = %+v, %v", list, err)
	}

	stopped, err := c.StopVM(ctx, "dev", api.StopVMRequest{}, nil)
	if err != nil || stopped.State != "stopped" {
		t.Fatalf("stop = %+v, %v", stopped, err)
	}
	if got := inst.Host.State(); strings.Contains(got, "tap ") || strings.Contains(got, "dns ") || strings.Contains(got, "vmm ") {
		t.Errorf("host still holds runtime resources after stop:\n%s", got)
	}
	started, err := c.StartVM(ctx, "dev", false, nil)
	if err != nil || started.State != "running" || started.IP != v.IP {
		t.Fatalf("start = %+v, %v (want same address %s)", started, err, v.IP)
	}

	if err := c.RemoveVM(ctx, "dev", api.RemoveVMRequest{}); !errors.Is(err, api.ErrConflict) {
		t.Errorf("rm of running vm without force: err = %v, want conflict", err)
	}
	if err := c.RemoveVM(ctx, "dev", api.RemoveVMRequest{Force: true}); err != nil {
		t.Fatal(err)
	}
	if got := inst.Host.State(); got != "" {
		t.Errorf("host state after rm, want empty:\n%s", got)
	}
	for _, dir := range []string{v.RootDisk, v.WorkDisk, v.ConsoleLog} {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived rm", dir)
		}
	}
	if _, err := c.VM(ctx, "dev"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("show after rm: err = %v, want not found", err)
	}
}

func dedupe(s []string) []string {
	var out []string
	for _, x := range s {
		if len(out) == 0 || out[len(out)-1] != x {
			out = append(out, x)
		}
	}
	return out
}

func TestCreateFailureUndoesEarlierSteps(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	inst.Host.FailNext("workdisk", errors.New("disk full"))

	_, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "dev", Image: "base"}, nil)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Step != "workdisk" || !strings.Contains(ae.Message, "disk full") {
		t.Fatalf("err = %#v, want step workdisk with the cause", err)
	}
	if len(ae.Logs) == 0 {
		t.Error("error names no log file")
	}
	if _, err := inst.Client.VM(ctx, "dev"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("half-made vm still recorded: %v", err)
	}
	if got := inst.Host.State(); got != "" {
		t.Errorf("host state after failed create, want empty:\n%s", got)
	}
	if entries, _ := os.ReadDir(inst.Paths.DataDir + "/vms"); len(entries) != 0 {
		t.Errorf("vm directories left behind: %v", entries)
	}
	// The name is free again.
	if _, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "dev", Image: "base"}, nil); err != nil {
		t.Errorf("create after rolled-back create: %v", err)
	}
}

func TestBootFailureLeavesStoppedVMWithReason(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	inst.Host.FailNext("boot", errors.New("vmm exited: kvm unavailable"))

	_, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "dev", Image: "base"}, nil)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Step != "boot" {
		t.Fatalf("err = %v, want step boot", err)
	}
	if !strings.Contains(ae.Hint, "banger vm start dev") || !containsSuffix(ae.Logs, "console.log") {
		t.Errorf("error lacks retry hint or console log: %+v", ae)
	}
	v, err := inst.Client.VM(ctx, "dev")
	if err != nil || v.State != "stopped" || !strings.Contains(v.Reason, "kvm unavailable") {
		t.Fatalf("vm after failed boot = %+v, %v", v, err)
	}
	if got := inst.Host.State(); strings.Contains(got, "tap ") || strings.Contains(got, "vmm ") {
		t.Errorf("boot undo left runtime resources:\n%s", got)
	}
	if v, err := inst.Client.StartVM(ctx, "dev", false, nil); err != nil || v.State != "running" || v.Reason != "" {
		t.Errorf("retrying start = %+v, %v", v, err)
	}
}

func containsSuffix(list []string, suffix string) bool {
	for _, s := range list {
		if strings.HasSuffix(s, suffix) {
			return true
		}
	}
	return false
}

func TestInvalidRequestsChangeNothing(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	cases := []struct {
		req  api.CreateVMRequest
		code string
		want string
	}{
		{api.CreateVMRequest{Name: "Bad_Name"}, api.CodeInvalid, "invalid vm name"},
		{api.CreateVMRequest{Name: "ok", CPUs: 999}, api.CodeInvalid, "cpu"},
		{api.CreateVMRequest{Name: "ok", MemoryMiB: 1}, api.CodeInvalid, "memory"},
		{api.CreateVMRequest{Name: "ok", Image: "nope"}, api.CodeNotFound, "no image named"},
		{api.CreateVMRequest{Name: daemontest.ReservedName}, api.CodeInvalid, "taken by a user's zone"},
	}
	for _, tc := range cases {
		_, _, err := inst.Client.CreateVM(ctx, tc.req, nil)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != tc.code || !strings.Contains(ae.Message, tc.want) {
			t.Errorf("create %+v: err = %v, want %s containing %q", tc.req, err, tc.code, tc.want)
		}
	}
	if _, err := inst.Client.StopVM(ctx, "ghost", api.StopVMRequest{}, nil); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("stop unknown vm: %v", err)
	}
	if calls := inst.Host.Calls(); len(calls) != 0 {
		t.Errorf("invalid requests reached the host: %v", calls)
	}
	if vms, _ := inst.Client.VMs(ctx, true); len(vms) != 0 {
		t.Errorf("invalid requests recorded vms: %v", vms)
	}
}

func TestShippedDaemonWithoutLayersGivesPreflightError(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, func(_ *daemon.Config, deps *daemon.Deps) { *deps = daemon.Deps{} })
	inst.AddImage(t, "base")
	_, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "dev"}, nil)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodePrecondition || !strings.Contains(ae.Message, "vmm") {
		t.Fatalf("err = %v, want precondition naming the missing vmm", err)
	}
	st, err := inst.Client.Status(ctx)
	if err != nil || len(st.Problems) == 0 {
		t.Errorf("status = %+v, %v; want a problem listed", st, err)
	}
}

func TestReconcileNoticesDeadVMMAndStrayResources(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	v, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "dev", Image: "base"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	inst.Host.AddStrayTAP("bg-deadbeef00")
	inst.Host.KillVMM(v.PID)
	if err := inst.Daemon.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := inst.Client.VM(ctx, "dev")
	if err != nil || got.State != "stopped" || !strings.Contains(got.Reason, "exited") || !strings.Contains(got.Reason, "console.log") {
		t.Errorf("vm after its VMM died = %+v, %v", got, err)
	}
	if state := inst.Host.State(); strings.Contains(state, "tap ") || strings.Contains(state, "dns ") {
		t.Errorf("reconcile left runtime resources:\n%s", state)
	}
	if _, err := inst.Client.StartVM(ctx, "dev", false, nil); err != nil {
		t.Errorf("start after crash: %v", err)
	}
}

func TestRestartAdoptsRunningVMsAndExplainsInterruptedCreate(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, nil)
	img := inst.AddImage(t, "base")
	v, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "dev", Image: "base"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A create that was cut off by kill -9: the row exists, nothing runs.
	half := &vm.VM{ID: "0123456789", Name: "half", State: vm.Creating, ImageID: img.ID, CPUs: 1, MemoryMiB: 256, DiskBytes: 1 << 30,
		Dir: inst.Paths.VMDataDir("0123456789"), StateDir: inst.Paths.VMStateDir("0123456789"), Socket: inst.Paths.VMSocket("0123456789"), CreatedAt: time.Now()}
	if err := inst.Daemon.Store().CreateVM(ctx, half); err != nil {
		t.Fatal(err)
	}
	inst.Stop()

	// A new daemon on the same state and the same host.
	cfg := daemon.Config{Loaded: mustLoad(t, inst), Version: "test2"}
	next := daemontest.Serve(t, cfg, inst.Host.Layers(), inst.Host)
	got, err := next.Client.VM(ctx, "dev")
	if err != nil || got.State != "running" || got.PID != v.PID {
		t.Errorf("vm after daemon restart = %+v, %v; want still running with pid %d", got, err, v.PID)
	}
	h, err := next.Client.VM(ctx, "half")
	if err != nil || h.State != "error" || !strings.Contains(h.Reason, "interrupted") || !strings.Contains(h.Reason, "banger vm rm half") {
		t.Errorf("interrupted vm = %+v, %v", h, err)
	}
	if err := next.Client.RemoveVM(ctx, "half", api.RemoveVMRequest{}); err != nil {
		t.Errorf("removing the interrupted vm: %v", err)
	}
}

func mustLoad(t *testing.T, inst *daemontest.Instance) *config.Loaded {
	t.Helper()
	l, err := config.Load(inst.Paths)
	if err != nil {
		t.Fatal(err)
	}
	l.ReconcileInterval = "50ms"
	return l
}

func TestEventsStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	got := subscribe(ctx, t, inst)
	if _, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "dev", Image: "base", NoStart: true}, nil); err != nil {
		t.Fatal(err)
	}
	if err := inst.Client.RemoveVM(ctx, "dev", api.RemoveVMRequest{}); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for len(seen) < 4 {
		select {
		case ev := <-got:
			if ev.Name == "dev" {
				seen = append(seen, ev.Type+" "+ev.Name)
			}
		case <-ctx.Done():
			t.Fatalf("events seen: %v", seen)
		}
	}
	// rm announces the removing state before anything goes.
	if diff := cmp.Diff([]string{"vm.created dev", "vm.stopped dev", "vm.updated dev", "vm.removed dev"}, seen); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestResize(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	if _, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "dev", Image: "base", DiskBytes: 1 << 30}, nil); err != nil {
		t.Fatal(err)
	}
	// Online: the file grows on the host, the VMM is told, the guest grows
	// the file system.
	before := len(inst.Host.Calls())
	v, err := inst.Client.ResizeVM(ctx, "dev", api.ResizeVMRequest{DiskBytes: 2 << 30}, nil)
	if err != nil || v.DiskBytes != 2<<30 || v.State != "running" {
		t.Fatalf("online grow = %+v, %v", v, err)
	}
	want := []string{"extend dev 2G", "updatedrive dev", "connect dev", `guest-run PATH=/usr/sbin:/sbin:$PATH; resize2fs "$(findfs LABEL=banger-work)"`, "close"}
	if diff := cmp.Diff(want, inst.Host.Calls()[before:]); diff != "" {
		t.Errorf("online grow calls (-want +got):\n%s", diff)
	}
	// A guest that cannot grow its file system: the error says how to
	// finish offline, and the size is not recorded.
	inst.Host.FailNext("guest-run", errors.New("resize2fs: Permission denied"))
	_, err = inst.Client.ResizeVM(ctx, "dev", api.ResizeVMRequest{DiskBytes: 3 << 30}, nil)
	if err == nil || !strings.Contains(err.Error(), "growfs") || !strings.Contains(err.Error(), "banger vm resize dev") {
		t.Errorf("failed online grow: %v", err)
	}
	if got, _ := inst.Client.VM(ctx, "dev"); got.DiskBytes != 2<<30 {
		t.Errorf("failed online grow recorded %d bytes", got.DiskBytes)
	}
	if _, err := inst.Client.StopVM(ctx, "dev", api.StopVMRequest{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := inst.Client.ResizeVM(ctx, "dev", api.ResizeVMRequest{DiskBytes: 512 << 20}, nil); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("shrink: err = %v, want invalid", err)
	}
	v, err = inst.Client.ResizeVM(ctx, "dev", api.ResizeVMRequest{DiskBytes: 3 << 30}, nil)
	if err != nil || v.DiskBytes != 3<<30 {
		t.Errorf("offline grow = %+v, %v", v, err)
	}
	if _, err := inst.Client.ResizeVM(ctx, "dev", api.ResizeVMRequest{}, nil); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("empty resize: err = %v, want invalid", err)
	}
}

func TestResizeRoot(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	if _, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "dev", Image: "base", DiskBytes: 1 << 30, RootBytes: 4 << 30}, nil); err != nil {
		t.Fatal(err)
	}
	// The root grows while the VM is stopped, and the refusal says how.
	before := len(inst.Host.Calls())
	_, err := inst.Client.ResizeVM(ctx, "dev", api.ResizeVMRequest{RootBytes: 8 << 30}, nil)
	if !errors.Is(err, api.ErrPrecondition) || !strings.Contains(err.Error(), "banger vm stop dev && banger vm resize dev --root-size 8G") {
		t.Errorf("root of a running vm: err = %v", err)
	}
	if calls := inst.Host.Calls()[before:]; len(calls) != 0 {
		t.Errorf("a refused resize touched the host: %v", calls)
	}
	if _, err := inst.Client.StopVM(ctx, "dev", api.StopVMRequest{}, nil); err != nil {
		t.Fatal(err)
	}
	before = len(inst.Host.Calls())
	v, err := inst.Client.ResizeVM(ctx, "dev", api.ResizeVMRequest{RootBytes: 8 << 30, DiskBytes: 2 << 30}, nil)
	if err != nil || v.DiskBytes != 2<<30 {
		t.Fatalf("grow root and work = %+v, %v", v, err)
	}
	if diff := cmp.Diff([]string{"growroot dev 8G", "grow dev 2G"}, inst.Host.Calls()[before:]); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	// Shrinking the root is refused by the disk layer, and said so.
	if _, err := inst.Client.ResizeVM(ctx, "dev", api.ResizeVMRequest{RootBytes: 2 << 30}, nil); !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "pick a larger size") {
		t.Errorf("shrinking the root: err = %v, want invalid", err)
	}
	if _, err := inst.Client.StartVM(ctx, "dev", false, nil); err != nil {
		t.Errorf("start after root resize: %v", err)
	}
}

func TestReconcileStopsVMMsOfStartsCutOffByACrash(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	v, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "dev", Image: "base", NoStart: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A daemon killed during `vm start` leaves a VMM on the VM's socket and
	// a TAP, while the database still says stopped.
	rec, err := inst.Daemon.Store().VM(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	pid := inst.Host.StartOrphanVMM(rec.Socket)
	inst.Host.AddStrayTAP(v.TAP)
	if err := inst.Daemon.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(inst.Host.State(), fmt.Sprintf("vmm %d", pid)) {
		t.Errorf("unrecorded vmm %d still runs:\n%s", pid, inst.Host.State())
	}
	if strings.Contains(inst.Host.State(), "tap "+v.TAP) {
		t.Errorf("stopped vm's tap survived reconcile:\n%s", inst.Host.State())
	}
	got, err := inst.Client.VM(ctx, "dev")
	if err != nil || got.State != "stopped" {
		t.Errorf("vm = %+v, %v; want stopped", got, err)
	}
}

func TestLogsTail(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	v, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "dev", Image: "base"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for i := 0; i < 50; i++ {
		lines = append(lines, fmt.Sprintf("line %d", i))
	}
	if err := os.WriteFile(v.ConsoleLog, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := inst.Client.VMLogsTail(ctx, "dev", "console", false, 3, &b); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != "line 47\nline 48\nline 49\n" {
		t.Errorf("tail 3 = %q", got)
	}
	b.Reset()
	if err := inst.Client.VMLogsTail(ctx, "dev", "console", false, 500, &b); err != nil || strings.Count(b.String(), "\n") != 50 {
		t.Errorf("tail 500 = %d lines, %v", strings.Count(b.String(), "\n"), err)
	}
}

// A client that goes away (Ctrl-C on `banger vm create`) rolls the create
// back, whichever step it interrupts.
func TestInterruptedCreateLeavesNothing(t *testing.T) {
	for _, step := range []string{"layer", "boot"} {
		t.Run(step, func(t *testing.T) {
			inst := daemontest.Start(t, nil)
			inst.AddImage(t, "base")
			blocked := inst.Host.BlockNext(step)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				_, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "dev", Image: "base"}, nil)
				done <- err
			}()
			select {
			case <-blocked:
			case <-time.After(10 * time.Second):
				t.Fatalf("create never reached %s", step)
			}
			cancel()
			if err := <-done; !errors.Is(err, api.ErrInterrupted) {
				t.Errorf("interrupted create: err = %v, want interrupted", err)
			}
			// The daemon finishes the rollback after the client left.
			deadline := time.Now().Add(10 * time.Second)
			var vms []api.VM
			for time.Now().Before(deadline) {
				vms, _ = inst.Client.VMs(context.Background(), true)
				if len(vms) == 0 && inst.Host.State() == "" {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if len(vms) != 0 {
				t.Errorf("vm survived a create interrupted at %s: %+v", step, vms)
			}
			if state := inst.Host.State(); state != "" {
				t.Errorf("host state after a create interrupted at %s:\n%s", step, state)
			}
			if entries, _ := os.ReadDir(inst.Paths.DataDir + "/vms"); len(entries) != 0 {
				t.Errorf("vm directories left behind: %v", entries)
			}
		})
	}
}

func TestReconcileRemovesStagesOfInterruptedBootstraps(t *testing.T) {
	inst := daemontest.Start(t, nil)
	stage := filepath.Join(inst.Paths.ImagesDir(), ".base-0123456789.bootstrap-42")
	keep := filepath.Join(inst.Paths.ImagesDir(), "base-0123456789")
	for _, d := range []string{stage, keep} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := inst.Daemon.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stage); !os.IsNotExist(err) {
		t.Errorf("stage of an interrupted bootstrap survived reconcile: %v", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("reconcile removed a finished image directory: %v", err)
	}
}

// subscribe follows the daemon's events until ctx ends. It returns once the
// subscription is live: a probe VM's events have come through.
func subscribe(ctx context.Context, t *testing.T, inst *daemontest.Instance) <-chan api.Event {
	t.Helper()
	got := make(chan api.Event, 256)
	go func() {
		_ = inst.Client.Events(ctx, func(ev api.Event) error {
			got <- ev
			return nil
		})
	}()
	for i := 0; ; i++ {
		probe := fmt.Sprintf("probe%d", i)
		if _, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: probe, Image: "base", NoStart: true}, nil); err != nil {
			t.Fatal(err)
		}
		if err := inst.Client.RemoveVM(ctx, probe, api.RemoveVMRequest{}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-got:
			// Drain the probe's other events.
			for drained := false; !drained; {
				select {
				case <-got:
				case <-time.After(50 * time.Millisecond):
					drained = true
				}
			}
			return got
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("event stream never delivered")
		}
	}
}

// TestDNSSetupIsRecordedAndReappliedWithTheBridge: a setup before the bridge
// exists is recorded and applied once the first VM brings the bridge up, once
// per daemon, and again by the next daemon; teardown forgets it.
func TestDNSSetupIsRecordedAndReappliedWithTheBridge(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	resolverCalls := func(h *daemontest.Host) []string {
		var out []string
		for _, c := range h.Calls() {
			if strings.HasPrefix(c, "resolver ") {
				out = append(out, c)
			}
		}
		return out
	}
	res, err := inst.Client.DNSSetup(ctx, api.DNSSetupRequest{})
	if err != nil || !res.Deferred {
		t.Fatalf("dns setup before the bridge = %+v, %v; want deferred", res, err)
	}
	for _, name := range []string{"a", "b"} {
		if _, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: name, Image: "base"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string{"resolver on"}, resolverCalls(inst.Host)); diff != "" {
		t.Errorf("resolver calls after two creates (-want +got):\n%s", diff)
	}
	inst.Stop()
	next := daemontest.Serve(t, daemon.Config{Loaded: mustLoad(t, inst), Version: "test2"}, inst.Host.Layers(), inst.Host)
	// The daemon answers once its start-up reconcile is done.
	if _, err := next.Client.Status(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"resolver on", "resolver on"}, resolverCalls(inst.Host)); diff != "" {
		t.Errorf("resolver calls after a daemon restart adopted running vms (-want +got):\n%s", diff)
	}
	if _, err := next.Client.DNSSetup(ctx, api.DNSSetupRequest{Remove: true}); err != nil {
		t.Fatal(err)
	}
	if got := resolverCalls(inst.Host); got[len(got)-1] != "resolver off" {
		t.Errorf("teardown did not undo the setup: %v", got)
	}
	next.Stop()
	last := daemontest.Serve(t, daemon.Config{Loaded: mustLoad(t, inst), Version: "test3"}, inst.Host.Layers(), inst.Host)
	if _, _, err := last.Client.CreateVM(ctx, api.CreateVMRequest{Name: "c", Image: "base"}, nil); err != nil {
		t.Fatal(err)
	}
	if got := resolverCalls(inst.Host); len(got) != 3 {
		t.Errorf("setup re-applied after teardown: %v", got)
	}
}

// A guest whose init never accepts commands after SSH answered (the wait
// in the guest fails) is reported in the create's progress, not failed:
// the VM runs and answers SSH.
func TestCreateReportsAnInitThatDoesNotAnswer(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	inst.Host.FailNext("exec sh", errors.New("injected: systemd did not start"))
	var notes []string
	v, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "dev", Image: "base", WaitSSH: true}, func(p api.Progress) {
		if p.Step == "init" && !p.Finished {
			notes = append(notes, p.Message)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if v.State != "running" {
		t.Errorf("state = %s, want running", v.State)
	}
	if !slices.ContainsFunc(notes, func(n string) bool {
		return strings.Contains(n, "injected: systemd did not start") && strings.Contains(n, "console.log")
	}) {
		t.Errorf("init progress %q does not report the failed wait and the console log to read", notes)
	}
	if !slices.ContainsFunc(inst.Host.Calls(), func(c string) bool { return strings.HasPrefix(c, "exec sh -c # banger: return once the guest's init") }) {
		t.Errorf("the create did not wait for the guest's init: %q", inst.Host.Calls())
	}
}
