package daemon_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"banger/internal/api"
	"banger/internal/daemon"
	"banger/internal/vm"
)

// hasCall reports whether one of calls starts with prefix.
func hasCall(calls []string, prefix string) bool {
	return slices.ContainsFunc(calls, func(c string) bool { return strings.HasPrefix(c, prefix) })
}

// TestWarmTemplateServesCreates: image warm makes a suspended hidden
// template; a create of its shape restores from it (no boot), one of
// another shape boots; the template is kept for the next create; image rm
// takes it along.
func TestWarmTemplateServesCreates(t *testing.T) {
	ctx := context.Background()
	inst := suspendInstance(t)
	n0 := len(inst.Host.Calls())
	tmpl, err := inst.Client.WarmImage(ctx, "base", api.WarmImageRequest{CPUs: 1, MemoryMiB: 512, DiskBytes: 1 << 30}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.State != "suspended" || !tmpl.Hidden || !strings.HasPrefix(tmpl.Name, "template-") {
		t.Fatalf("warm template = %+v; want a hidden suspended template", tmpl)
	}
	// The template is saved once its boot has finished, not as soon as
	// SSH answers: every VM made from it would redo the rest.
	warm := callsSince(inst, n0)
	settled := slices.IndexFunc(warm, func(c string) bool {
		return strings.HasPrefix(c, "exec ") && strings.Contains(c, "is-system-running --wait")
	})
	if paused := slices.Index(warm, "pause "+tmpl.Name); settled < 0 || paused < settled {
		t.Errorf("warm calls %q: want the guest's boot waited for (systemctl is-system-running --wait) before the pause", warm)
	}
	armed := slices.IndexFunc(warm, func(c string) bool {
		return strings.HasPrefix(c, "exec ") && strings.Contains(c, "--listen")
	})
	if paused := slices.Index(warm, "pause "+tmpl.Name); armed < settled || paused < armed {
		t.Errorf("warm calls %q: want the identity agent armed after the guest settled and before the pause", warm)
	}
	if slices.Contains(warm, "armclock "+tmpl.Name) {
		t.Errorf("warm calls %q: a template is saved without an armed clock command, which every VM made from it would hold", warm)
	}
	if again, err := inst.Client.WarmImage(ctx, "base", api.WarmImageRequest{CPUs: 1, MemoryMiB: 512, DiskBytes: 1 << 30}, nil); err != nil || again.Name != tmpl.Name || again.State != "suspended" {
		t.Errorf("warming again = %+v, %v; want the same template kept", again, err)
	}

	for _, name := range []string{"f1", "f2"} {
		n := len(inst.Host.Calls())
		var notes []string
		v, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: name, Image: "base", CPUs: 1, MemoryMiB: 512, DiskBytes: 1 << 30, WaitSSH: true},
			func(p api.Progress) { notes = append(notes, p.Message) })
		if err != nil {
			t.Fatal(err)
		}
		calls := callsSince(inst, n)
		if !hasCall(calls, "restore-as "+name) || hasCall(calls, "boot") {
			t.Errorf("create of the template's shape: calls %q, want a restore and no boot", calls)
		}
		// The identity goes to the template's agent, not over SSH.
		if !slices.Contains(calls, "identity "+tmpl.Name+" "+name) || hasCall(calls, "exec sh -c") {
			t.Errorf("create of the template's shape: calls %q, want the identity given to the template's agent and no command over SSH", calls)
		}
		if !slices.ContainsFunc(notes, func(m string) bool { return strings.Contains(m, "restoring from warm template "+tmpl.Name) }) {
			t.Errorf("create of the template's shape did not say so: %q", notes)
		}
		if v.State != "running" || v.Hidden || v.Name != name {
			t.Errorf("fast-created vm = %+v", v)
		}
	}
	if v, err := inst.Client.VM(ctx, tmpl.Name); err != nil || v.State != "suspended" {
		t.Errorf("the template after two creates: %+v, %v; want it suspended for the next", v, err)
	}

	n := len(inst.Host.Calls())
	if _, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "other", Image: "base", CPUs: 2, MemoryMiB: 512, DiskBytes: 1 << 30, WaitSSH: true}, nil); err != nil {
		t.Fatal(err)
	}
	if calls := callsSince(inst, n); hasCall(calls, "restore-as") || !hasCall(calls, "boot other") {
		t.Errorf("create of another shape: calls %q, want a cold boot", calls)
	}
	if _, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "f1", Image: "base", CPUs: 1, MemoryMiB: 512, DiskBytes: 1 << 30}, nil); err == nil || !strings.Contains(err.Error(), "vm f1 already exists") {
		t.Errorf("create of a taken name with a template: %v", err)
	}

	for _, name := range []string{"f1", "f2", "other"} {
		if err := inst.Client.RemoveVM(ctx, name, api.RemoveVMRequest{Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := inst.Client.RemoveImage(ctx, "base"); err != nil {
		t.Fatalf("image rm with a warm template: %v", err)
	}
	if _, err := inst.Client.VM(ctx, tmpl.Name); err == nil {
		t.Error("image rm left its warm template")
	}
}

// TestStaleWarmTemplate: a template that is no longer suspended (a warm
// cut off, its saved state discarded) is not used (the create says so and
// boots), and image prune removes it.
func TestStaleWarmTemplate(t *testing.T) {
	ctx := context.Background()
	inst := suspendInstance(t)
	tmpl, err := inst.Client.WarmImage(ctx, "base", api.WarmImageRequest{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := inst.Daemon.Store()
	row, err := st.VM(ctx, tmpl.Name)
	if err != nil {
		t.Fatal(err)
	}
	row.State = vm.Stopped
	if err := st.UpdateVM(ctx, &row); err != nil {
		t.Fatal(err)
	}
	n := len(inst.Host.Calls())
	var notes []string
	if _, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "dev", Image: "base", WaitSSH: true}, func(p api.Progress) { notes = append(notes, p.Message) }); err != nil {
		t.Fatal(err)
	}
	if calls := callsSince(inst, n); hasCall(calls, "restore-as") || !hasCall(calls, "boot dev") {
		t.Errorf("create with a stale template: calls %q, want a cold boot", calls)
	}
	if !slices.ContainsFunc(notes, func(m string) bool { return strings.Contains(m, "not usable; booting cold") }) {
		t.Errorf("create with a stale template did not say so: %q", notes)
	}
	res, err := inst.Client.PruneImages(ctx, api.PruneRequest{LogDays: 30})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(res.Items, func(i api.PruneItem) bool {
		return i.Kind == api.PruneWarm && strings.Contains(i.Why, tmpl.Name) && i.Bytes > 0
	}) {
		t.Errorf("prune = %+v; want the stale template", res.Items)
	}
	if _, err := inst.Client.VM(ctx, tmpl.Name); err == nil {
		t.Error("prune left the stale template")
	}
}

// TestTemplateIdentityAgentFallsBack: the agent's token is the daemon's
// alone (0600 beside the template's disks); a clone whose agent refuses
// the connection (a template saved before agents) is re-identified over
// SSH and says so, and so is one of a template without a token.
func TestTemplateIdentityAgentFallsBack(t *testing.T) {
	ctx := context.Background()
	inst := suspendInstance(t)
	tmpl, err := inst.Client.WarmImage(ctx, "base", api.WarmImageRequest{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	row, err := inst.Daemon.Store().VM(ctx, tmpl.Name)
	if err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(row.Dir, "identity-agent.token")
	if st, err := os.Stat(token); err != nil || st.Mode().Perm() != 0o600 || st.Size() != 65 {
		t.Fatalf("the agent's token file: %v, %v; want 64 hex digits and a newline, mode 0600", st, err)
	}
	create := func(name string) (calls, notes []string) {
		t.Helper()
		n := len(inst.Host.Calls())
		v, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: name, Image: "base", WaitSSH: true},
			func(p api.Progress) { notes = append(notes, p.Message) })
		if err != nil || v.State != "running" {
			t.Fatalf("create %s: %+v, %v", name, v, err)
		}
		return callsSince(inst, n), notes
	}
	// The re-identification over SSH: the program with the new VM's
	// hostname and domain among its arguments.
	overSSH := func(calls []string, name string) bool {
		return slices.ContainsFunc(calls, func(c string) bool {
			return strings.HasPrefix(c, "exec sh -c") && strings.Contains(c, "\n "+name+" vm ")
		})
	}
	short := func(calls []string) []string {
		out := make([]string, len(calls))
		for i, c := range calls {
			out[i] = c[:min(len(c), 40)]
		}
		return out
	}

	inst.Host.FailNext("identity", fmt.Errorf("%w at 10.213.0.2:222", daemon.ErrNoAgent))
	calls, notes := create("f1")
	if !hasCall(calls, "restore-as f1") || !overSSH(calls, "f1") {
		t.Errorf("create whose agent refused: calls %q, want a restore re-identified over SSH", short(calls))
	}
	if !slices.ContainsFunc(notes, func(m string) bool { return strings.Contains(m, "has no identity agent waiting; going over SSH") }) {
		t.Errorf("create whose agent refused did not say so: %q", notes)
	}

	if err := os.Remove(token); err != nil {
		t.Fatal(err)
	}
	calls, _ = create("f2")
	if !hasCall(calls, "restore-as f2") || !overSSH(calls, "f2") || hasCall(calls, "identity") {
		t.Errorf("create from a template without a token: calls %q, want a restore re-identified over SSH", short(calls))
	}
}
