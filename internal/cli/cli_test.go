package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"banger/internal/api"
	"banger/internal/config"
	"banger/internal/daemon"
	"banger/internal/daemon/daemontest"
	"banger/internal/preflight"
)

// run executes the real CLI in-process against the test's daemon.
func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	app := &App{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(""), NoAutostart: true}
	code = Execute(context.Background(), app, args)
	return out.String(), errb.String(), code
}

func TestCreateListStopRemoveThroughCLI(t *testing.T) {
	t.Setenv("NO_COLOR", "1")
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")

	out, errOut, code := run(t, "vm", "create", "dev", "--image", "base", "--cpus", "1", "--memory", "512M", "--disk", "2G")
	if code != 0 {
		t.Fatalf("create: code %d, stderr %s", code, errOut)
	}
	if !strings.Contains(out, "created dev: dev.vm at 10.213.0.") || !strings.Contains(out, "banger vm ssh dev") {
		t.Errorf("create output = %q", out)
	}
	if !strings.Contains(errOut, "layer: ") {
		t.Errorf("create progress (plain lines off a terminal) = %q", errOut)
	}
	if _, _, code := run(t, "vm", "create", "web", "--image", "base", "--no-start"); code != 0 {
		t.Fatal("create web failed")
	}

	out, _, code = run(t, "vm", "list", "-o", "json")
	if code != 0 {
		t.Fatal("list failed")
	}
	var vms []api.VM
	if err := json.Unmarshal([]byte(out), &vms); err != nil {
		t.Fatalf("list -o json is not JSON: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, v := range vms {
		got[v.Name] = v.State
	}
	if diff := cmp.Diff(map[string]string{"dev": "running", "web": "stopped"}, got); diff != "" {
		t.Errorf("vm states (-want +got):\n%s", diff)
	}

	out, _, _ = run(t, "vm", "list")
	if !strings.HasPrefix(out, "NAME") || !strings.Contains(out, "dev.vm") || !strings.Contains(out, "running") {
		t.Errorf("vm list table:\n%s", out)
	}

	if _, errOut, code := run(t, "vm", "stop", "dev"); code != 0 {
		t.Fatalf("stop: %s", errOut)
	}
	if _, errOut, code := run(t, "vm", "rm", "--all"); code != 0 {
		t.Fatalf("rm --all: %s", errOut)
	}
	out, _, _ = run(t, "vm", "list", "-o", "json")
	if strings.TrimSpace(out) != "[]" {
		t.Errorf("vms after rm --all = %s", out)
	}
	if state := inst.Host.State(); state != "" {
		t.Errorf("host state after rm --all:\n%s", state)
	}
}

func TestCLIErrorsAreClearAndChangeNothing(t *testing.T) {
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"vm", "create", "Bad_Name"}, []string{"invalid vm name", "DNS labels"}},
		{[]string{"vm", "create", "ok", "--memory", "lots"}, []string{"--memory", "e.g. 512M"}},
		{[]string{"vm", "create", "ok", "--image", "ghost"}, []string{`no image named "ghost"`, "hint:", "banger image bootstrap ghost"}},
		{[]string{"vm", "stop", "nope"}, []string{`no vm named "nope"`, "hint:"}},
		{[]string{"vm", "resize", "nope"}, []string{"give --disk, --root-size or both"}},
		{[]string{"vm", "list", "-o", "yaml"}, []string{"unknown output format"}},
		{[]string{"vm", "rm", "a", "--all"}, []string{"not both"}},
	}
	for _, tc := range cases {
		out, errOut, code := run(t, tc.args...)
		if code == 0 {
			t.Errorf("%v: exit 0, want failure (stdout %q)", tc.args, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%v: stderr %q lacks %q", tc.args, errOut, w)
			}
		}
	}
	if calls := inst.Host.Calls(); len(calls) != 0 {
		t.Errorf("failed commands reached the host: %v", calls)
	}
}

func TestRemoveSeveralReportsEachFailure(t *testing.T) {
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	for _, n := range []string{"a", "b"} {
		if _, e, code := run(t, "vm", "create", n, "--image", "base", "--no-start"); code != 0 {
			t.Fatal(e)
		}
	}
	out, errOut, code := run(t, "vm", "rm", "a", "ghost", "b")
	if code == 0 || !strings.Contains(errOut, "ghost") || !strings.Contains(out, "removed a") || !strings.Contains(out, "removed b") {
		t.Errorf("rm a ghost b: code %d\nstdout %s\nstderr %s", code, out, errOut)
	}
}

func TestDaemonStatusJSON(t *testing.T) {
	daemontest.Start(t, nil)
	out, errOut, code := run(t, "daemon", "status", "-o", "json")
	if code != 0 {
		t.Fatal(errOut)
	}
	var st api.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if st.PID == 0 || st.Socket == "" || st.Database == "" || st.LogFile == "" || len(st.Listeners) == 0 {
		t.Errorf("status lacks fields: %+v", st)
	}
}

func TestConfigShowSources(t *testing.T) {
	daemontest.Isolate(t)
	t.Setenv("BANGER_DEFAULT_CPUS", "3")
	out, errOut, code := run(t, "config", "show", "-o", "json")
	if code != 0 {
		t.Fatal(errOut)
	}
	var got struct {
		Settings []config.Setting `json:"settings"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range got.Settings {
		if s.Key == "default_cpus" {
			found = s.Value == "3" && s.Source == config.SourceEnv && s.Origin == "BANGER_DEFAULT_CPUS"
		}
	}
	if !found {
		t.Errorf("default_cpus not reported from env: %s", out)
	}
}

func TestSSHArgvPinsHostKey(t *testing.T) {
	paths := config.Paths{DataDir: "/d"}
	got := sshArgv(paths, api.VM{Name: "dev", DNSName: "dev.vm", IP: "172.30.0.2"}, "root", []string{"uname", "-a"})
	want := []string{"ssh", "-i", "/d/ssh/id_ed25519", "-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile=/d/ssh/known_hosts",
		"-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "HostKeyAlias=dev.vm",
		"-o", "ConnectTimeout=30", "-o", "LogLevel=ERROR", "root@172.30.0.2", "uname", "-a"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ssh argv (-want +got):\n%s", diff)
	}
	for _, a := range got {
		if strings.Contains(a, "StrictHostKeyChecking=no") {
			t.Error("ssh argv disables host key checking")
		}
	}
}

func TestNoDaemonMessage(t *testing.T) {
	daemontest.Isolate(t)
	_, errOut, code := run(t, "vm", "list")
	if code == 0 || !strings.Contains(errOut, "is bangerd running?") {
		t.Errorf("no daemon: code %d, stderr %q", code, errOut)
	}
}

func TestDoctorRendersTheDaemonsChecks(t *testing.T) {
	daemontest.Start(t, func(_ *daemon.Config, deps *daemon.Deps) {
		deps.Preflight = preflight.New(preflight.Config{
			VMMBinary: "/usr/bin/banger-vmm-qemu", VMMKind: "qemu", DataDir: t.TempDir(),
			LookPath: func(n string) (string, error) {
				if n == "resize2fs" {
					return "", errors.New("not found")
				}
				return "/usr/bin/" + n, nil
			},
			Stat:    func(string) (os.FileInfo, error) { return nil, nil },
			Euid:    func() int { return 0 },
			Output:  func(context.Context, ...string) ([]byte, error) { return []byte("iptables v1.8.9\n"), nil },
			Reflink: func(string) (bool, error) { return true, nil },
			KVM:     func() error { return nil },
		})
	})
	out, errOut, code := run(t, "doctor", "-o", "json")
	var checks []api.Check
	if err := json.Unmarshal([]byte(out), &checks); err != nil {
		t.Fatalf("doctor -o json: %v\n%s\n%s", err, out, errOut)
	}
	if code != 1 {
		t.Errorf("doctor exit code %d with a failing check, want 1", code)
	}
	byName := map[string]api.Check{}
	for _, c := range checks {
		if _, dup := byName[c.Name]; dup {
			t.Errorf("check %s listed twice", c.Name)
		}
		byName[c.Name] = c
		if c.Status != "ok" && c.Status != "warn" && c.Status != "fail" {
			t.Errorf("check %s has status %q", c.Name, c.Status)
		}
		if c.Status == "fail" && c.Fix == "" {
			t.Errorf("failing check %s names no fix", c.Name)
		}
	}
	for _, want := range []string{"kvm", "vmm", "ip_forward", "iptables", "reflink", "disk space", "cgroup v2", "privileges", "ssh", "daemon"} {
		if _, ok := byName[want]; !ok {
			t.Errorf("doctor lacks check %q", want)
		}
	}
	if c := byName["resize2fs"]; c.Status != "fail" || !strings.Contains(c.Detail, "disk growth") {
		t.Errorf("resize2fs check = %+v, want a failure naming disk growth", c)
	}
	if c := byName["daemon"]; c.Status != "ok" {
		t.Errorf("daemon check = %+v", c)
	}
	text, _, _ := run(t, "doctor")
	if !strings.Contains(text, "fix: sudo apt-get install e2fsprogs") {
		t.Errorf("doctor table lacks the fix:\n%s", text)
	}
	for _, kind := range []string{"images", "vms", "cache", "templates", "logs"} {
		if !regexp.MustCompile(`(?m)^disk: ` + kind + ` +ok +[0-9.]+[KMGT]?B? in `).MatchString(text) {
			t.Errorf("doctor table lacks a disk use line for %s:\n%s", kind, text)
		}
	}
}

func TestDoctorWithoutADaemonSaysWhy(t *testing.T) {
	daemontest.Isolate(t)
	out, _, code := run(t, "doctor", "-o", "json")
	var checks []api.Check
	if err := json.Unmarshal([]byte(out), &checks); err != nil {
		t.Fatalf("doctor -o json: %v\n%s", err, out)
	}
	if code != 1 || len(checks) != 1 || checks[0].Name != "daemon" || checks[0].Status != "fail" || !strings.Contains(checks[0].Detail, "is bangerd running") {
		t.Errorf("doctor without a daemon: code %d, checks %+v", code, checks)
	}
}

func TestDevNullIsNotATerminal(t *testing.T) {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("/dev/null reported as a terminal: vm create would wait for SSH and draw a spinner")
	}
}

func TestDNSSetupAndTeardownGoThroughTheDaemon(t *testing.T) {
	inst := daemontest.Start(t, nil)
	out, errOut, code := run(t, "dns", "setup")
	if code != 0 || !strings.Contains(out, "recorded: bangerd routes ~vm") {
		t.Fatalf("dns setup before the bridge: code %d\n%s%s", code, out, errOut)
	}
	inst.AddImage(t, "base")
	if _, _, code := run(t, "vm", "create", "dev", "--image", "base"); code != 0 {
		t.Fatal("create failed")
	}
	out, _, code = run(t, "dns", "teardown")
	if code != 0 || !strings.Contains(out, "ran: resolvectl") || !strings.Contains(out, ".vm resolution removed (resolved)") {
		t.Errorf("dns teardown: code %d\n%s", code, out)
	}
	if diff := cmp.Diff([]string{"resolver on", "resolver off"}, grepCalls(inst.Host.Calls(), "resolver ")); diff != "" {
		t.Errorf("resolver calls (-want +got):\n%s", diff)
	}
}

func grepCalls(calls []string, prefix string) []string {
	var out []string
	for _, c := range calls {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

func TestVMExecKeepsArgvAndStatus(t *testing.T) {
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	if _, _, code := run(t, "vm", "create", "dev", "--image", "base"); code != 0 {
		t.Fatal("create failed")
	}
	out, errOut, code := run(t, "vm", "exec", "dev", "--", "echo", "two words", "-n", "$x")
	if code != 0 || out != "echo\ntwo words\n-n\n$x\n" {
		t.Errorf("exec echo: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	// Flags after NAME belong to the command, not to banger.
	if out, _, code := run(t, "vm", "exec", "dev", "ls", "-la"); code != 0 || out != "ls\n-la\n" {
		t.Errorf("exec ls -la: code %d, stdout %q", code, out)
	}
	out, errOut, code = run(t, "vm", "exec", "dev", "--", "fail", "7")
	if code != 7 || out != "" || !strings.Contains(errOut, "failing with 7") {
		t.Errorf("exec fail 7: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, errOut, code := run(t, "vm", "exec", "-t", "dev", "--", "true"); code == 0 || !strings.Contains(errOut, "-t needs a terminal") {
		t.Errorf("exec -t without a terminal: code %d, stderr %q", code, errOut)
	}
}

func TestVMForwardAddsListsAndRemoves(t *testing.T) {
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	if _, _, code := run(t, "vm", "create", "dev", "--image", "base", "--no-start"); code != 0 {
		t.Fatal("create failed")
	}
	out, errOut, code := run(t, "vm", "forward", "dev", "48123:80", "48124:53/udp")
	if code != 0 || out != "127.0.0.1:48123:80/tcp\n127.0.0.1:48124:53/udp\n" {
		t.Errorf("forward add: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, errOut, code := run(t, "vm", "forward", "dev", "48123:81"); code == 0 || !strings.Contains(errOut, "already forwarded") {
		t.Errorf("forwarding a taken host port: code %d, stderr %q", code, errOut)
	}
	if _, errOut, code := run(t, "vm", "forward", "dev", "80"); code == 0 || !strings.Contains(errOut, "HOSTPORT:GUESTPORT") {
		t.Errorf("a bad spec: code %d, stderr %q", code, errOut)
	}
	if out, _, _ := run(t, "vm", "list"); !strings.Contains(out, "48123:80, 48124:53/udp") {
		t.Errorf("vm list does not show the forwards:\n%s", out)
	}
	if out, _, code := run(t, "vm", "forward", "dev", "--rm", "48123:80"); code != 0 || out != "127.0.0.1:48124:53/udp\n" {
		t.Errorf("forward --rm: code %d, stdout %q", code, out)
	}
	if _, _, code := run(t, "vm", "rm", "dev"); code != 0 {
		t.Fatal("rm failed")
	}
	if _, _, code := run(t, "vm", "create", "dev", "--image", "base", "--no-start"); code != 0 {
		t.Fatal("create failed")
	}
	if out, _, _ := run(t, "vm", "forward", "dev"); out != "" {
		t.Errorf("a new vm of the same name inherited forwards: %q", out)
	}
}

func TestSSHConfigPrintsAndInstalls(t *testing.T) {
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	if _, _, code := run(t, "vm", "create", "dev", "--image", "base"); code != 0 {
		t.Fatal("create failed")
	}
	out, errOut, code := run(t, "ssh-config")
	if code != 0 || !strings.Contains(out, "Host dev.vm\n") || !strings.Contains(out, "HostKeyAlias dev.vm") || !strings.Contains(out, inst.Paths.KnownHosts()) {
		t.Errorf("ssh-config: code %d\n%s%s", code, out, errOut)
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	existing := "Host work\n\tHostName work.example\n"
	if err := os.MkdirAll(home+"/.ssh", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(home+"/.ssh/config", []byte(existing), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, errOut, code := run(t, "ssh-config", "--install"); code != 0 {
			t.Fatalf("ssh-config --install: code %d, %s", code, errOut)
		}
	}
	got, _ := os.ReadFile(home + "/.ssh/config")
	if strings.Count(string(got), "Include "+inst.Paths.SSHConfig()) != 1 || !strings.HasSuffix(string(got), existing) {
		t.Errorf("~/.ssh/config after two installs:\n%s", got)
	}
	if _, _, code := run(t, "vm", "rm", "-f", "dev"); code != 0 {
		t.Fatal("rm failed")
	}
	if out, _, _ := run(t, "ssh-config"); strings.Contains(out, "dev.vm") {
		t.Errorf("ssh-config still names a removed vm:\n%s", out)
	}
}

// A guest that ignores the power button is stopped by signal; the stop
// succeeds but says what it cost, as does the stopped VM.
func TestStopOfAGuestThatIgnoresThePowerButtonSaysSo(t *testing.T) {
	t.Setenv("NO_COLOR", "1")
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	if _, errOut, code := run(t, "vm", "create", "dev", "--image", "base"); code != 0 {
		t.Fatalf("create: %s", errOut)
	}
	inst.Host.FailNext("shutdown", fmt.Errorf("%w within 10s; its VMM was stopped with SIGTERM", daemon.ErrForcedStop))
	_, errOut, code := run(t, "vm", "stop", "dev")
	if code != 0 {
		t.Fatalf("stop: exit %d: %s", code, errOut)
	}
	const note = "the guest did not power off within 10s; its VMM was stopped with SIGTERM; writes the guest had not flushed are lost"
	if !strings.Contains(errOut, note) {
		t.Errorf("stop's output does not say the guest was stopped by signal:\n%s", errOut)
	}
	out, _, _ := run(t, "vm", "show", "dev")
	if !strings.Contains(out, "stopped") || !strings.Contains(out, note) {
		t.Errorf("vm show after a forced stop:\n%s", out)
	}
	// The next clean stop clears it.
	if _, errOut, code := run(t, "vm", "start", "dev"); code != 0 {
		t.Fatalf("start: %s", errOut)
	}
	run(t, "vm", "stop", "dev")
	if out, _, _ := run(t, "vm", "show", "dev"); strings.Contains(out, "power off") {
		t.Errorf("vm show after a clean stop still has the forced stop's reason:\n%s", out)
	}
}
