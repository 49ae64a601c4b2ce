package daemon_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"banger/internal/api"
	"banger/internal/daemon"
	"banger/internal/daemon/daemontest"
	"banger/internal/testutil"
)

// checkTimeline fails unless b is a boot timeline with the given phases,
// in order, each starting where the one before it ended.
func checkTimeline(t *testing.T, b *api.BootTimeline, origin string, phases ...string) {
	t.Helper()
	if b == nil {
		t.Fatal("no boot timeline")
	}
	if b.Origin != origin {
		t.Errorf("origin = %q, want %q", b.Origin, origin)
	}
	var names []string
	var sum int64
	for i, p := range b.Phases {
		names = append(names, p.Name)
		if p.DurationMS < 0 {
			t.Errorf("phase %s lasts %d ms", p.Name, p.DurationMS)
		}
		if i > 0 {
			prev := b.Phases[i-1]
			if d := p.StartMS - (prev.StartMS + prev.DurationMS); d < -1 || d > 1 {
				t.Errorf("phase %s starts at %d ms, the one before ended at %d ms", p.Name, p.StartMS, prev.StartMS+prev.DurationMS)
			}
		}
		sum += p.DurationMS
	}
	if diff := cmp.Diff(phases, names); diff != "" {
		t.Errorf("phases (-want +got):\n%s", diff)
	}
	if origin == "vmm" && (b.TotalMS <= 0 || sum-b.TotalMS > int64(len(b.Phases)) || b.TotalMS-sum > int64(len(b.Phases))) {
		t.Errorf("phases add up to %d ms, total %d ms", sum, b.TotalMS)
	}
}

// Every boot gets a timeline in `vm show`: from the guest console (here a
// captured one) and the daemon's clock; a boot nobody waited for has the
// guest's phases only, until a wait reaches SSH.
func TestBootTimeline(t *testing.T) {
	ctx := context.Background()
	var log testutil.SyncBuffer
	inst := daemontest.Start(t, func(_ *daemon.Config, deps *daemon.Deps) {
		deps.Log = slog.New(slog.NewJSONHandler(&log, nil))
	})
	inst.AddImage(t, "base")
	console, err := os.ReadFile("../vm/testdata/console-debian12-markers.log")
	if err != nil {
		t.Fatal(err)
	}
	inst.Host.SetConsole(console)
	c := inst.Client
	all := []string{"vmm", "kernel", "initramfs", "switch-root", "systemd", "sshd"}

	v, _, err := c.CreateVM(ctx, api.CreateVMRequest{Name: "dev", Image: "base", WaitSSH: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := v.Boot
	checkTimeline(t, first, "vmm", all...)
	// The fake VMM started its guest's kernel 0.3 s after it started
	// (plus the moment between the daemon's note and the fake's start),
	// and SSH answered 0.4 s after the port opened.
	if p := first.Phases[0]; p.DurationMS < 300 || p.DurationMS >= 1300 || p.Clock != "estimate" {
		t.Errorf("vmm phase = %+v, want 0.3 s, estimated", p)
	}
	if p := first.Phases[len(first.Phases)-1]; p.DurationMS != 400 || p.Clock != "host" {
		t.Errorf("sshd phase = %+v, want 400 ms on the host's clock", p)
	}
	shown, err := c.VM(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first, shown.Boot); diff != "" {
		t.Errorf("vm show's timeline differs from create's (-create +show):\n%s", diff)
	}

	// A boot without --wait: the guest's phases, origin the kernel.
	if _, err := c.StopVM(ctx, "dev", api.StopVMRequest{}, nil); err != nil {
		t.Fatal(err)
	}
	started, err := c.StartVM(ctx, "dev", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkTimeline(t, started.Boot, "kernel", "kernel", "initramfs", "switch-root", "systemd")
	if started.Boot.TotalMS != 0 || !started.Boot.VMMStartedAt.After(first.VMMStartedAt) {
		t.Errorf("second boot = %+v, want no total and a later start than %v", started.Boot, first.VMMStartedAt)
	}
	// Waiting reaches SSH: the record is completed.
	waited, err := c.WaitVM(ctx, "dev", api.WaitVMRequest{})
	if err != nil {
		t.Fatal(err)
	}
	checkTimeline(t, waited.Boot, "vmm", all...)

	// The daemon log says it too, for benchmarks.
	if n := countLines(log.String(), `"msg":"boot timeline"`); n != 2 {
		t.Errorf("daemon log has %d boot timeline lines, want 2:\n%s", n, log.String())
	}
}

// An image without boot marks (a kernel that prints nothing) still gets
// the daemon's total.
func TestBootTimelineWithoutMarks(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	v, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "dev", Image: "base", WaitSSH: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.Boot == nil || len(v.Boot.Phases) != 0 || v.Boot.TotalMS < 0 || v.Boot.VMMStartedAt.IsZero() {
		t.Errorf("boot = %+v, want a start, a total and no phases", v.Boot)
	}
	made, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "cold", Image: "base", NoStart: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if made.Boot != nil {
		t.Errorf("a vm never booted has a timeline: %+v", made.Boot)
	}
}

func countLines(text, substr string) int {
	n := 0
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}
