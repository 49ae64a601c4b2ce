package daemon_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"banger/internal/api"
	"banger/internal/daemon"
	"banger/internal/daemon/daemontest"
	"banger/internal/vm"
)

func suspendInstance(t *testing.T) *daemontest.Instance {
	t.Helper()
	inst := daemontest.Start(t, func(c *daemon.Config, _ *daemon.Deps) { c.ReconcileInterval = "1h" })
	inst.AddImage(t, "base")
	return inst
}

func savedFiles(t *testing.T, inst *daemontest.Instance, name string) []string {
	t.Helper()
	v, err := inst.Daemon.Store().VM(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range []string{v.SuspendState(), v.SuspendMemory()} {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// callsSince returns the host calls made after the first n.
func callsSince(inst *daemontest.Instance, n int) []string { return inst.Host.Calls()[n:] }

func TestSuspendFreesTheHostAndStartResumes(t *testing.T) {
	ctx := context.Background()
	inst := suspendInstance(t)
	vmIn(t, inst, "dev", vm.Running)
	n := len(inst.Host.Calls())
	v, err := inst.Client.SuspendVM(ctx, "dev", nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.State != "suspended" || v.SavedBytes <= 0 || v.SavedMemory == "" || v.PID != 0 {
		t.Errorf("suspended vm = %+v; want state suspended, saved bytes and memory path, no pid", v)
	}
	if got := callsSince(inst, n); !slices.Equal(got, []string{"armclock dev", "pause dev", "snapshot dev", "park dev", "kill dev"}) {
		t.Errorf("host calls of suspend = %q", got)
	}
	if host := inst.Host.State(); strings.Contains(host, "vmm ") || strings.Contains(host, "tap ") || strings.Contains(host, "dns dev") {
		t.Errorf("a suspended vm still holds the host:\n%s", host)
	}
	if len(savedFiles(t, inst, "dev")) != 2 {
		t.Fatalf("saved state files = %v, want both", savedFiles(t, inst, "dev"))
	}
	// A daemon restart (reconcile) keeps a suspended VM as it is.
	if err := inst.Daemon.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := inst.Client.VM(ctx, "dev"); got.State != "suspended" || len(savedFiles(t, inst, "dev")) != 2 {
		t.Fatalf("after reconcile: %+v, files %v", got, savedFiles(t, inst, "dev"))
	}
	n = len(inst.Host.Calls())
	v, err = inst.Client.StartVM(ctx, "dev", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := callsSince(inst, n)
	if v.State != "running" || !slices.Contains(got, "resume dev") || slices.ContainsFunc(got, func(c string) bool { return strings.HasPrefix(c, "boot ") }) {
		t.Errorf("start of a suspended vm = %s, calls %q; want a restore and resume, no boot", v.State, got)
	}
	// The clock is set through the command armed before the suspend,
	// not a new session.
	if !slices.ContainsFunc(got, func(c string) bool { return strings.HasPrefix(c, "restore dev") }) ||
		!slices.Contains(got, "setclock dev") || slices.ContainsFunc(got, func(c string) bool { return strings.HasPrefix(c, "exec date") }) {
		t.Errorf("start of a suspended vm made calls %q; want restore and the clock set by the armed command", got)
	}
	if f := savedFiles(t, inst, "dev"); len(f) != 0 {
		t.Errorf("saved state left after the resume: %v", f)
	}

	// A guest that refused the armed command is suspended all the same,
	// and its clock set over a session of its own.
	inst.Host.FailNext("armclock", errors.New("no session"))
	if _, err := inst.Client.SuspendVM(ctx, "dev", nil); err != nil {
		t.Fatalf("suspend with the clock not armed: %v", err)
	}
	n = len(inst.Host.Calls())
	if _, err := inst.Client.StartVM(ctx, "dev", true, nil); err != nil {
		t.Fatal(err)
	}
	if got := callsSince(inst, n); slices.Contains(got, "setclock dev") || !slices.ContainsFunc(got, func(c string) bool { return strings.HasPrefix(c, "exec date -u -s @") }) {
		t.Errorf("start without an armed clock made calls %q; want the clock set by exec of date", got)
	}

	// A guest that cannot set its clock still runs; the start says so.
	if _, err := inst.Client.SuspendVM(ctx, "dev", nil); err != nil {
		t.Fatal(err)
	}
	inst.Host.FailNext("setclock", errors.New("date: cannot set date"))
	inst.Host.FailNext("exec", errors.New("date: cannot set date"))
	var said []string
	v, err = inst.Client.StartVM(ctx, "dev", true, func(p api.Progress) { said = append(said, p.Message) })
	if err != nil || v.State != "running" {
		t.Fatalf("start with a failing clock step = %s, %v; want running", v.State, err)
	}
	if !slices.ContainsFunc(said, func(m string) bool { return strings.Contains(m, "clock is behind") }) {
		t.Errorf("start did not report the clock it could not set: %q", said)
	}
}

func TestPauseResumeAndStopOfAPausedVM(t *testing.T) {
	ctx := context.Background()
	inst := suspendInstance(t)
	vmIn(t, inst, "dev", vm.Running)
	if v, err := inst.Client.PauseVM(ctx, "dev"); err != nil || v.State != "paused" {
		t.Fatalf("pause = %+v, %v", v, err)
	}
	// A paused VM's VMM is alive: reconcile keeps it paused, with its name.
	if err := inst.Daemon.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _ := inst.Client.VM(ctx, "dev"); v.State != "paused" || !strings.Contains(inst.Host.State(), "dns dev") {
		t.Errorf("paused vm after reconcile: %s; host:\n%s", v.State, inst.Host.State())
	}
	_, err := inst.Client.StartVM(ctx, "dev", false, nil)
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "paused") || !strings.Contains(err.Error(), "banger vm resume dev") {
		t.Errorf("start of a paused vm: %v; want a conflict pointing at vm resume", err)
	}
	if v, err := inst.Client.ResumeVM(ctx, "dev"); err != nil || v.State != "running" {
		t.Fatalf("resume = %+v, %v", v, err)
	}
	if _, err := inst.Client.PauseVM(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	n := len(inst.Host.Calls())
	if v, err := inst.Client.StopVM(ctx, "dev", api.StopVMRequest{}, nil); err != nil || v.State != "stopped" {
		t.Fatalf("stop of a paused vm = %+v, %v", v, err)
	}
	if got := callsSince(inst, n); len(got) < 2 || got[0] != "resume dev" || got[1] != "shutdown dev" {
		t.Errorf("stop of a paused vm made calls %q; want a resume, then the shutdown", got)
	}
}

func TestSuspendRefusalsAndFailures(t *testing.T) {
	ctx := context.Background()
	inst := suspendInstance(t)
	vmIn(t, inst, "off", vm.Stopped)
	_, err := inst.Client.SuspendVM(ctx, "off", nil)
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "stopped") || !strings.Contains(err.Error(), "banger vm start off") {
		t.Errorf("suspend of a stopped vm: %v; want a conflict with the start command", err)
	}
	_, err = inst.Client.ResumeVM(ctx, "off")
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "banger vm start off") {
		t.Errorf("resume of a stopped vm: %v", err)
	}

	vmIn(t, inst, "dev", vm.Running)
	host := inst.Host.State()
	inst.Host.FailNext("snapshot", errors.New("no space left on device"))
	_, err = inst.Client.SuspendVM(ctx, "dev", nil)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Step != "snapshot" || !strings.Contains(err.Error(), "no space left") || !strings.Contains(err.Error(), "df -h") {
		t.Fatalf("suspend with a full disk: %v; want the snapshot step, the cause and how to check", err)
	}
	if v, _ := inst.Client.VM(ctx, "dev"); v.State != "running" {
		t.Errorf("a failed suspend left the vm %s, want running again", v.State)
	}
	if got := inst.Host.State(); got != host {
		t.Errorf("a failed suspend changed the host:\nbefore:\n%s\nafter:\n%s", host, got)
	}
	if f := savedFiles(t, inst, "dev"); len(f) != 0 {
		t.Errorf("a failed suspend left %v", f)
	}

	// A restore that fails keeps the saved state and says how to go on.
	if _, err := inst.Client.SuspendVM(ctx, "dev", nil); err != nil {
		t.Fatal(err)
	}
	host = inst.Host.State()
	inst.Host.FailNext("restore", errors.New("qemu: bad snapshot"))
	_, err = inst.Client.StartVM(ctx, "dev", true, nil)
	if err == nil || !strings.Contains(err.Error(), "banger vm stop dev") {
		t.Fatalf("failed restore: %v; want the way out", err)
	}
	if v, _ := inst.Client.VM(ctx, "dev"); v.State != "suspended" || len(savedFiles(t, inst, "dev")) != 2 {
		t.Errorf("after a failed restore: %s with files %v; want suspended with both", v.State, savedFiles(t, inst, "dev"))
	}
	if got := inst.Host.State(); got != host {
		t.Errorf("a failed restore changed the host:\nbefore:\n%s\nafter:\n%s", host, got)
	}
	// Stop discards the saved state.
	if v, err := inst.Client.StopVM(ctx, "dev", api.StopVMRequest{}, nil); err != nil || v.State != "stopped" {
		t.Fatalf("stop of a suspended vm = %+v, %v", v, err)
	}
	if f := savedFiles(t, inst, "dev"); len(f) != 0 {
		t.Errorf("stop left the saved state %v", f)
	}
}

// TestReconcileOfSuspendLeftovers: what a crash at each point of suspend
// or resume leaves is settled by reconcile.
func TestReconcileOfSuspendLeftovers(t *testing.T) {
	ctx := context.Background()
	inst := suspendInstance(t)
	st := inst.Daemon.Store()
	write := func(v vm.VM) {
		for _, p := range []string{v.SuspendState(), v.SuspendMemory()} {
			if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	set := func(name string, s vm.State) vm.VM {
		v, err := st.VM(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		v.State = s
		if err := st.UpdateVM(ctx, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	// A suspend cut off after the snapshot, before it was recorded: the
	// VM runs on (paused), the files are not its state.
	vmIn(t, inst, "cut", vm.Paused)
	cut, _ := st.VM(ctx, "cut")
	write(cut)
	// A resume cut off before the saved state was dropped, no VMM.
	vmIn(t, inst, "resuming", vm.Stopped)
	write(set("resuming", vm.Starting))
	// A suspended VM whose files are gone.
	vmIn(t, inst, "lost", vm.Suspended)
	lost, _ := st.VM(ctx, "lost")
	if err := os.Remove(lost.SuspendMemory()); err != nil {
		t.Fatal(err)
	}
	if err := inst.Daemon.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, state, reason string
		files               int
	}{
		{"cut", "paused", "", 0},
		{"resuming", "suspended", "resume was interrupted", 2},
		{"lost", "stopped", "is missing", 0},
	} {
		v, err := inst.Client.VM(ctx, tc.name)
		if err != nil || v.State != tc.state || !strings.Contains(v.Reason, tc.reason) {
			t.Errorf("%s after reconcile = %s (%q), %v; want %s with %q", tc.name, v.State, v.Reason, err, tc.state, tc.reason)
		}
		if f := savedFiles(t, inst, tc.name); len(f) != tc.files {
			t.Errorf("%s keeps saved files %v, want %d", tc.name, f, tc.files)
		}
	}
	if _, err := inst.Client.StartVM(ctx, "resuming", true, nil); err != nil {
		t.Errorf("starting the interrupted resume again: %v", err)
	}
}
