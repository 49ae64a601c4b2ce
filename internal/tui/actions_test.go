package tui

import (
	"context"
	"errors"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/teatest"

	"banger/internal/api"
	"banger/internal/config"
	"banger/internal/daemon"
	"banger/internal/daemon/daemontest"
	"banger/internal/vm"
)

// harness is a TUI under teatest against a real daemon with fake host
// layers.
type harness struct {
	t    *testing.T
	inst *daemontest.Instance
	tm   *teatest.TestModel
	m    *Model
	ssh  *fakeSSH
}

// newHarness starts a daemon with image "base" and the named VMs
// (running, or stopped when the name ends in "~"), then the TUI.
func newHarness(t *testing.T, vms ...string) *harness {
	t.Helper()
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	ctx := context.Background()
	for _, n := range vms {
		name, stopped := strings.CutSuffix(n, "~")
		if _, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: name, Image: "base", CPUs: 1, MemoryMiB: 256, DiskBytes: vm.GiB, NoStart: stopped}, nil); err != nil {
			t.Fatal(err)
		}
	}
	h := &harness{t: t, inst: inst, ssh: &fakeSSH{}}
	h.m = New(ctx, Config{Client: inst.Client, Refresh: -1, SSH: h.ssh.command,
		Defaults: Defaults{Image: "base", CPUs: 2, Memory: "512M", Disk: "2G"}})
	h.tm = teatest.NewTestModel(t, h.m, teatest.WithInitialTermSize(120, 40))
	t.Cleanup(func() {
		_ = h.tm.Quit()
		h.m.Close()
	})
	h.waitScreen(regexp.MustCompile(`\d+ running`))
	return h
}

// waitScreen waits until the program's output matches re.
func (h *harness) waitScreen(re *regexp.Regexp) {
	h.t.Helper()
	teatest.WaitFor(h.t, h.tm.Output(), func(b []byte) bool { return re.Match(b) },
		teatest.WithDuration(20*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
}

// keys types key presses: single characters, or names such as "enter".
func (h *harness) keys(ks ...string) {
	for _, k := range ks {
		switch k {
		case "enter":
			h.tm.Send(tea.KeyMsg{Type: tea.KeyEnter})
		case "esc":
			h.tm.Send(tea.KeyMsg{Type: tea.KeyEsc})
		case "tab":
			h.tm.Send(tea.KeyMsg{Type: tea.KeyTab})
		case "ctrl+u":
			h.tm.Send(tea.KeyMsg{Type: tea.KeyCtrlU})
		default:
			h.tm.Type(k)
		}
	}
}

// eventually waits until cond holds.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s; host calls: %v", what, h.inst.Host.Calls())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) called(call string) func() bool {
	return func() bool { return slices.Contains(h.inst.Host.Calls(), call) }
}

func (h *harness) calledPrefix(prefix string) func() bool {
	return func() bool {
		return slices.ContainsFunc(h.inst.Host.Calls(), func(c string) bool { return strings.HasPrefix(c, prefix) })
	}
}

func (h *harness) state(name string) string {
	v, err := h.inst.Client.VM(context.Background(), name)
	if errors.Is(err, api.ErrNotFound) {
		return "gone"
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return v.State
}

func (h *harness) inState(name, state string) func() bool {
	return func() bool { return h.state(name) == state }
}

// final quits and returns the model's last state.
func (h *harness) final() *Model {
	h.t.Helper()
	h.keys("q")
	return h.tm.FinalModel(h.t, teatest.WithFinalTimeout(10*time.Second)).(*Model)
}

func count(calls []string, prefix string) int {
	n := 0
	for _, c := range calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

type fakeSSH struct {
	mu  sync.Mutex
	ran []string
}

func (f *fakeSSH) command(v api.VM) tea.ExecCommand { return &fakeExec{f: f, v: v} }

func (f *fakeSSH) sessions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ran...)
}

type fakeExec struct {
	f *fakeSSH
	v api.VM
}

func (e *fakeExec) Run() error {
	e.f.mu.Lock()
	defer e.f.mu.Unlock()
	e.f.ran = append(e.f.ran, e.v.Name+"@"+e.v.IP)
	return nil
}
func (e *fakeExec) SetStdin(io.Reader)  {}
func (e *fakeExec) SetStdout(io.Writer) {}
func (e *fakeExec) SetStderr(io.Writer) {}

func TestStartStopRestart(t *testing.T) {
	h := newHarness(t, "dev", "web~")
	// Rows sort by name: dev, web.
	h.keys("j", "s")
	h.eventually("web to boot", h.calledPrefix("boot web base"))
	h.eventually("web running", h.inState("web", "running"))
	h.waitScreen(regexp.MustCompile(`web\s+running`))

	h.keys("k", "x")
	h.eventually("dev to shut down", h.called("shutdown dev"))
	h.eventually("dev stopped", h.inState("dev", "stopped"))
	h.waitScreen(regexp.MustCompile(`dev\s+stopped`))

	h.keys("j", "r")
	h.eventually("web to restart", func() bool {
		c := h.inst.Host.Calls()
		return slices.Contains(c, "shutdown web") && count(c, "boot web") == 2
	})
	h.eventually("web running", h.inState("web", "running"))
}

func TestKillAsksFirst(t *testing.T) {
	h := newHarness(t, "dev")
	h.keys("K")
	h.waitScreen(regexp.MustCompile(`Kill dev\?`))
	h.keys("n", "x")
	h.eventually("dev to shut down", h.called("shutdown dev"))
	if slices.Contains(h.inst.Host.Calls(), "kill dev") {
		t.Fatalf("answering n killed the vm: %v", h.inst.Host.Calls())
	}
	// One operation per VM at a time: wait for the stop to finish.
	h.waitScreen(regexp.MustCompile(`dev stopped`))
	h.keys("s")
	h.eventually("dev to boot again", func() bool { return count(h.inst.Host.Calls(), "boot dev") == 2 })
	h.waitScreen(regexp.MustCompile(`dev started`))
	h.keys("K", "y")
	h.eventually("dev to be killed", h.called("kill dev"))
	h.eventually("dev stopped", h.inState("dev", "stopped"))
	h.waitScreen(regexp.MustCompile(`dev\s+stopped`))
}

func TestPauseResumeSuspend(t *testing.T) {
	h := newHarness(t, "dev")
	h.keys("p")
	h.eventually("dev to pause", h.called("pause dev"))
	h.eventually("dev paused", h.inState("dev", "paused"))
	h.waitScreen(regexp.MustCompile(`dev\s+paused`))
	h.keys("p")
	h.eventually("dev to resume", h.called("resume dev"))
	h.eventually("dev running", h.inState("dev", "running"))
	h.waitScreen(regexp.MustCompile(`dev resumed`))
	h.keys("z")
	h.eventually("dev to be saved", h.called("snapshot dev"))
	h.eventually("dev suspended", h.inState("dev", "suspended"))
	h.waitScreen(regexp.MustCompile(`dev\s+suspended`))
	h.keys("s")
	h.eventually("dev restored", func() bool {
		return slices.ContainsFunc(h.inst.Host.Calls(), func(c string) bool { return strings.HasPrefix(c, "restore dev") })
	})
	h.eventually("dev running again", h.inState("dev", "running"))
}

func TestDeleteAsksFirst(t *testing.T) {
	h := newHarness(t, "dev", "web~")
	h.keys("j", "D")
	h.waitScreen(regexp.MustCompile(`Delete web and its disks\?`))
	h.keys("esc")
	h.keys("D", "y")
	h.eventually("web's disks to go", h.called("rmdisks web"))
	h.eventually("web to be gone", h.inState("web", "gone"))
	if h.state("dev") != "running" {
		t.Errorf("dev is %s after deleting web", h.state("dev"))
	}
	// A running VM is killed first.
	h.keys("D", "y")
	h.eventually("dev to be gone", h.inState("dev", "gone"))
	if c := h.inst.Host.Calls(); !slices.Contains(c, "kill dev") {
		t.Errorf("deleting running dev did not kill it first: %v", c)
	}
	h.waitScreen(regexp.MustCompile(`no VMs yet`))
	if s := h.inst.Host.State(); s != "" {
		t.Errorf("host state after deleting everything:\n%s", s)
	}
}

func TestCreateForm(t *testing.T) {
	h := newHarness(t)
	h.keys("n")
	h.waitScreen(regexp.MustCompile(`New VM`))
	h.keys("api", "enter", "enter", "ctrl+u", "1", "enter", "ctrl+u", "256M", "enter", "ctrl+u", "3G", "enter")
	h.eventually("api to boot", h.calledPrefix("boot api base"))
	h.eventually("api running", h.inState("api", "running"))
	v, err := h.inst.Client.VM(context.Background(), "api")
	if err != nil {
		t.Fatal(err)
	}
	if v.CPUs != 1 || v.MemoryMiB != 256 || v.DiskBytes != 3*vm.GiB || v.Image != "base" {
		t.Errorf("created %+v, want 1 vCPU, 256 MiB, 3G disk, image base", v)
	}
	h.waitScreen(regexp.MustCompile(`api\s+running`))
	if m := h.final(); m.selected != "api" {
		t.Errorf("selected %q after create, want the new vm", m.selected)
	}
}

func TestCreateFormRejectsBadInput(t *testing.T) {
	h := newHarness(t)
	h.keys("n", "Bad_Name", "enter", "enter", "enter", "enter", "enter")
	h.waitScreen(regexp.MustCompile(`invalid vm name`))
	h.keys("esc")
	if m := h.final(); m.form != nil {
		t.Error("esc left the form open")
	}
	if c := h.inst.Host.Calls(); count(c, "clone") != 0 {
		t.Errorf("a rejected form reached the host: %v", c)
	}
}

func TestResizeStoppedVM(t *testing.T) {
	h := newHarness(t, "dev", "web~")
	// A running VM cannot grow: the status line says why.
	h.keys("R")
	h.waitScreen(regexp.MustCompile(`can only grow while it is stopped`))
	h.keys("j", "R")
	h.waitScreen(regexp.MustCompile(`Grow the work disk of web`))
	h.keys("ctrl+u", "6G", "enter")
	h.eventually("web's disk to grow", h.called("grow web 6G"))
	h.eventually("web's new size", func() bool {
		v, err := h.inst.Client.VM(context.Background(), "web")
		return err == nil && v.DiskBytes == 6*vm.GiB
	})
	h.waitScreen(regexp.MustCompile(`web resized`))
}

func TestSSHHandOff(t *testing.T) {
	h := newHarness(t, "dev", "web~")
	// A stopped VM gets a message, not a hand-off.
	h.keys("j", "c")
	h.waitScreen(regexp.MustCompile(`vm web is stopped`))
	h.keys("k", "c")
	h.eventually("the ssh hand-off", func() bool { return len(h.ssh.sessions()) == 1 })
	if got := h.ssh.sessions()[0]; !strings.HasPrefix(got, "dev@10.213.0.") {
		t.Errorf("ssh ran for %q, want dev at its address", got)
	}
	// The TUI resumes; teatest's output does not repaint after an exec,
	// so the model tells.
	h.eventually("the TUI to resume", func() bool { return true })
	time.Sleep(200 * time.Millisecond)
	if m := h.final(); m.status.text != "ssh session to dev ended" || len(h.ssh.sessions()) != 1 {
		t.Errorf("after ssh: status %q, sessions %v", m.status.text, h.ssh.sessions())
	}
}

func TestImagesView(t *testing.T) {
	h := newHarness(t, "dev")
	h.inst.AddImage(t, "spare")
	h.keys("tab")
	h.waitScreen(regexp.MustCompile(`spare`))
	// base is in use: the daemon refuses and the status line explains.
	h.keys("D", "y")
	h.waitScreen(regexp.MustCompile(`image base is used by dev[\s\S]*hint: remove those VMs first`))
	h.keys("j", "D", "y")
	h.eventually("spare to be removed", func() bool {
		imgs, err := h.inst.Client.Images(context.Background())
		return err == nil && len(imgs) == 1 && imgs[0].Name == "base"
	})
	h.waitScreen(regexp.MustCompile(`\[Images 1\]`))
	if m := h.final(); len(m.images) != 1 {
		t.Errorf("images view lists %d images after the removal, want 1", len(m.images))
	}
}

func TestErrorsShowHintAndLogs(t *testing.T) {
	h := newHarness(t, "dev")
	h.inst.Host.FailNext("shutdown", errors.New("the guest did not answer"))
	h.keys("x")
	h.waitScreen(regexp.MustCompile(`✗ dev: [\s\S]*log: \S+`))
	// The UI goes on working after the error.
	h.keys("K", "y")
	h.eventually("dev killed", h.called("kill dev"))
}

func TestEventsUpdateTheTable(t *testing.T) {
	h := newHarness(t, "dev")
	// Refresh is off in the harness: only the event stream can show these.
	if _, _, err := h.inst.Client.CreateVM(context.Background(), api.CreateVMRequest{Name: "late", Image: "base", CPUs: 1, MemoryMiB: 256, DiskBytes: vm.GiB}, nil); err != nil {
		t.Fatal(err)
	}
	h.waitScreen(regexp.MustCompile(`late\s+running`))
	if _, err := h.inst.Client.StopVM(context.Background(), "dev", api.StopVMRequest{}, nil); err != nil {
		t.Fatal(err)
	}
	h.waitScreen(regexp.MustCompile(`dev\s+stopped`))
	if err := h.inst.Client.RemoveVM(context.Background(), "late", api.RemoveVMRequest{Force: true}); err != nil {
		t.Fatal(err)
	}
	h.eventually("late gone", h.inState("late", "gone"))
	h.waitScreen(regexp.MustCompile(`\[VMs 1\]`))
	m := h.final()
	if _, ok := m.vms["late"]; ok || len(m.vms) != 1 {
		t.Errorf("vms after removal: %v", keysOf(m.vms))
	}
}

func TestFilterSortAndQuit(t *testing.T) {
	h := newHarness(t, "alpha", "beta~", "gamma")
	h.keys("/", "a", "m", "enter")
	h.waitScreen(regexp.MustCompile(`/am`))
	h.keys("O")
	m := h.final()
	var names []string
	for _, v := range m.rows {
		names = append(names, v.Name)
	}
	if strings.Join(names, ",") != "gamma" {
		t.Errorf("rows after filter /am = %v, want gamma", names)
	}
	h.m.filter.SetValue("")
	m.relist()
	names = names[:0]
	for _, v := range m.rows {
		names = append(names, v.Name)
	}
	if strings.Join(names, ",") != "gamma,beta,alpha" {
		t.Errorf("rows sorted by name descending = %v", names)
	}
}

func TestConsoleFollowsLive(t *testing.T) {
	h := newHarness(t, "dev")
	v, err := h.inst.Client.VM(context.Background(), "dev")
	if err != nil {
		t.Fatal(err)
	}
	h.waitScreen(regexp.MustCompile(`fake /`))
	appendFile(t, v.ConsoleLog, "login: hello from the guest\n")
	h.waitScreen(regexp.MustCompile(`hello from the guest`))
}

func keysOf(m map[string]api.VM) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func TestDaemonRestartReconnects(t *testing.T) {
	h := newHarness(t, "dev")
	h.inst.Stop()
	h.waitScreen(regexp.MustCompile(`✗ `))
	// A new daemon on the same files: the TUI re-subscribes and re-fetches
	// by itself.
	loaded, err := config.Load(h.inst.Paths)
	if err != nil {
		t.Fatal(err)
	}
	loaded.ReconcileInterval = "50ms"
	daemontest.Serve(t, daemon.Config{Loaded: loaded, Version: "test", BuildID: "test"}, h.inst.Host.Layers(), h.inst.Host)
	h.waitScreen(regexp.MustCompile(`reconnected to bangerd`))
}
