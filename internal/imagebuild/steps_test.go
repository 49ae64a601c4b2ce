package imagebuild

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"banger/internal/guest"
)

// fakeConn records what a build asks of the guest. A command whose line
// contains failOn exits 100 after printing to standard error.
type fakeConn struct {
	calls  []string
	stdin  map[string]string
	failOn string
}

func (f *fakeConn) Run(ctx context.Context, cmd guest.Command) error {
	f.calls = append(f.calls, "run "+cmd.Line)
	if cmd.Stdin != nil {
		b, _ := io.ReadAll(cmd.Stdin)
		if f.stdin == nil {
			f.stdin = map[string]string{}
		}
		f.stdin[cmd.Line] = string(b)
	}
	if cmd.Stdout != nil {
		fmt.Fprintf(cmd.Stdout, "output of %.20s\n", cmd.Line)
	}
	if f.failOn != "" && strings.Contains(cmd.Line, f.failOn) {
		fmt.Fprintf(cmd.Stderr, "E: Unable to locate package nope\n")
		return &guest.ExitError{Line: cmd.Line, Code: 100}
	}
	return ctx.Err()
}

func (f *fakeConn) Upload(ctx context.Context, src, dst string) error {
	f.calls = append(f.calls, "upload "+src+" "+dst)
	return nil
}

func runAll(t *testing.T, p Plan, conn Conn) (string, error) {
	t.Helper()
	steps, err := Steps(p)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	l := NewLog(&buf, nil, nil)
	for _, s := range steps {
		if err := s.Run(context.Background(), conn, l); err != nil {
			return buf.String(), fmt.Errorf("%s: %w", s.Name, err)
		}
	}
	return buf.String(), nil
}

func TestStepsOrderAndCommands(t *testing.T) {
	p := Plan{
		Copies:        []Copy{{Src: "/h/site", Dest: "/srv/site"}},
		Packages:      PackageFile{Names: []string{"git", "libfoo=1.2"}, Debs: []string{"/h/pkgs/tool_1.0_all.deb"}},
		Modules:       true,
		KernelVersion: "6.1.0-28-cloud-amd64",
		Scripts:       []Script{{Name: "../setup me.sh", Content: "#!/bin/bash\necho hi\n"}, {Name: "plain", Content: "echo plain\n"}},
	}
	steps, err := Steps(p)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range steps {
		names = append(names, s.Name+":"+s.Kind)
	}
	want := "copy-1:builder upload-debs:builder packages:packages modules:packages run-1:scripts run-2:scripts tidy:builder sync:builder"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("steps = %s\nwant   %s", got, want)
	}

	conn := &fakeConn{}
	log, err := runAll(t, p, conn)
	if err != nil {
		t.Fatal(err)
	}
	wantCalls := []string{
		"upload /h/site /srv/site",
		"upload /h/pkgs/tool_1.0_all.deb " + WorkDir + "/debs/tool_1.0_all.deb",
		"run " + aptEnv + " apt-get update -q",
		"run " + aptEnv + " apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold git libfoo=1.2 " + WorkDir + "/debs/tool_1.0_all.deb",
		"run apt-get clean && rm -rf /var/lib/apt/lists/*",
		"run " + ModulesCommand("6.1.0-28-cloud-amd64"),
		"run " + ScriptCommand(WorkDir+"/01-setup_me.sh", true),
		"run " + ScriptCommand(WorkDir+"/02-plain", false),
		"run rm -rf " + WorkDir,
		"run sync",
	}
	if got, want := strings.Join(conn.calls, "\n"), strings.Join(wantCalls, "\n"); got != want {
		t.Errorf("calls:\n%s\nwant:\n%s", got, want)
	}
	if conn.stdin[ScriptCommand(WorkDir+"/01-setup_me.sh", true)] != "#!/bin/bash\necho hi\n" {
		t.Errorf("script content not sent on standard input: %q", conn.stdin)
	}
	if !strings.Contains(log, "| output of") || !strings.Contains(log, "$ upload /h/site -> /srv/site") {
		t.Errorf("log lacks commands or output:\n%s", log)
	}
}

func TestStepsWithoutNamedPackagesSkipIndexUpdate(t *testing.T) {
	conn := &fakeConn{}
	if _, err := runAll(t, Plan{Packages: PackageFile{Debs: []string{"/x/a.deb"}}}, conn); err != nil {
		t.Fatal(err)
	}
	for _, c := range conn.calls {
		if strings.Contains(c, "apt-get update") {
			t.Errorf("local packages alone ran %q (the guest may have no network)", c)
		}
	}
	conn = &fakeConn{}
	if _, err := runAll(t, Plan{}, conn); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(conn.calls, []string{"run sync"}) {
		t.Errorf("an empty plan ran %v, want only the flush", conn.calls)
	}
}

func TestStepFailureNamesItselfWithOutputTail(t *testing.T) {
	conn := &fakeConn{failOn: "apt-get install"}
	_, err := runAll(t, Plan{Packages: PackageFile{Names: []string{"nope"}}, Scripts: []Script{{Name: "s", Content: "true"}}}, conn)
	var ee *guest.ExitError
	if !errors.As(err, &ee) || ee.Code != 100 {
		t.Fatalf("err = %v", err)
	}
	if !strings.HasPrefix(err.Error(), "packages: installing packages") || !strings.Contains(err.Error(), "Unable to locate package nope") {
		t.Errorf("error %q does not name the step and the guest's complaint", err)
	}
	for _, c := range conn.calls {
		if strings.Contains(c, "BANGER_BUILD=1") {
			t.Error("a script ran after the packages failed")
		}
	}
}

func TestModulesNeedAKernelVersion(t *testing.T) {
	if _, err := Steps(Plan{Modules: true}); err == nil {
		t.Error("--modules without a kernel version accepted")
	}
	if _, err := Steps(Plan{Modules: true, KernelVersion: "6.1; rm -rf /"}); err == nil {
		t.Error("a kernel version with shell syntax accepted")
	}
}

func TestSafeName(t *testing.T) {
	for in, want := range map[string]string{"setup.sh": "setup.sh", "../../etc/x y": "x_y", "/": "script", "": "script", "ü.sh": "_.sh"} {
		if got := safeName(in); got != want {
			t.Errorf("safeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAptProxyIsWrittenFirstAndRemovedLast(t *testing.T) {
	p := Plan{
		Copies:   []Copy{{Src: "/h/etc", Dest: "/etc/myapp"}},
		Packages: PackageFile{Names: []string{"git"}},
		Scripts:  []Script{{Name: "s", Content: "apt-get install -y jq\n"}},
		AptProxy: "http://192.168.1.10:3142",
	}
	steps, err := Steps(p)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range steps {
		names = append(names, s.Name)
	}
	if got, want := strings.Join(names, " "), "copy-1 apt-proxy packages run-1 tidy sync"; got != want {
		t.Errorf("steps = %s, want %s", got, want)
	}
	conn := &fakeConn{}
	if _, err := runAll(t, p, conn); err != nil {
		t.Fatal(err)
	}
	wantCalls := []string{
		"upload /h/etc /etc/myapp",
		"run " + aptProxyCommand,
		"run " + aptEnv + " apt-get update -q",
		"run " + InstallCommand([]string{"git"}, nil),
		"run apt-get clean && rm -rf /var/lib/apt/lists/*",
		"run " + ScriptCommand(WorkDir+"/01-s", false),
		"run rm -rf " + WorkDir + " " + AptProxyConf,
		"run sync",
	}
	if got, want := strings.Join(conn.calls, "\n"), strings.Join(wantCalls, "\n"); got != want {
		t.Errorf("calls:\n%s\nwant:\n%s", got, want)
	}
	want := "// Written by banger image build for the build only; removed before the image is committed.\n" +
		"Acquire::http::Proxy \"http://192.168.1.10:3142/\";\nAcquire::https::Proxy \"http://192.168.1.10:3142/\";\n"
	if got := conn.stdin[aptProxyCommand]; got != want {
		t.Errorf("apt configuration sent:\n%s\nwant:\n%s", got, want)
	}
	// The URL travels as the file's content, never in a command line.
	for _, c := range conn.calls {
		if strings.Contains(c, "192.168.1.10") {
			t.Errorf("the proxy URL is part of the command %q", c)
		}
	}
}

// The image must not keep the proxy: whatever else the plan holds, the
// last step that changes the guest removes the configuration (only the
// flush of its disks follows).
func TestAptProxyNeverOutlivesTheBuild(t *testing.T) {
	for name, p := range map[string]Plan{
		"packages": {Packages: PackageFile{Names: []string{"git"}}},
		"debs":     {Packages: PackageFile{Debs: []string{"/x/a.deb"}}},
		"modules":  {Modules: true, KernelVersion: "6.1.0-28-cloud-amd64"},
		"scripts":  {Scripts: []Script{{Name: "s", Content: "true"}}},
	} {
		p.AptProxy = "http://cache.lan:3142"
		steps, err := Steps(p)
		if err != nil {
			t.Fatal(err)
		}
		conn := &fakeConn{}
		if _, err := runAll(t, p, conn); err != nil {
			t.Fatal(err)
		}
		set, firstApt := -1, -1
		for i, c := range conn.calls {
			switch {
			case c == "run "+aptProxyCommand:
				set = i
			case firstApt < 0 && (strings.Contains(c, "apt-get") || strings.Contains(c, "BANGER_BUILD=1")):
				firstApt = i
			}
		}
		if set < 0 || set > firstApt {
			t.Errorf("%s: the proxy is not set before apt runs: %v", name, conn.calls)
		}
		if steps[len(steps)-1].Name != "sync" || conn.calls[len(conn.calls)-1] != "run sync" {
			t.Errorf("%s: the build does not end by flushing the guest's disks: %v", name, conn.calls)
		}
		last := conn.calls[len(conn.calls)-2]
		if steps[len(steps)-2].Name != "tidy" || !strings.HasPrefix(last, "run rm -rf ") || !strings.HasSuffix(last, " "+AptProxyConf) {
			t.Errorf("%s: the last command %q does not remove %s", name, last, AptProxyConf)
		}
	}
}

func TestAptProxyUnusedOrMalformed(t *testing.T) {
	conn := &fakeConn{}
	if _, err := runAll(t, Plan{AptProxy: "http://cache.lan:3142", Copies: []Copy{{Src: "/a", Dest: "/b"}}}, conn); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(conn.calls, "\n"); got != "upload /a /b\nrun sync" {
		t.Errorf("a build that runs no apt set the proxy:\n%s", got)
	}
	for _, bad := range []string{"cache.lan:3142", "http://h\";\nrm -rf /", "http://u:p@h"} {
		if _, err := Steps(Plan{AptProxy: bad, Packages: PackageFile{Names: []string{"git"}}}); err == nil || !strings.Contains(err.Error(), "apt proxy") {
			t.Errorf("Steps with apt proxy %q: %v", bad, err)
		}
	}
}

func TestPackageIndexFailureNamesTheProxy(t *testing.T) {
	conn := &fakeConn{failOn: "apt-get update"}
	_, err := runAll(t, Plan{AptProxy: "http://cache.lan:3142", Packages: PackageFile{Names: []string{"git"}}}, conn)
	if err == nil || !strings.Contains(err.Error(), "does the guest reach the apt proxy http://cache.lan:3142/?") {
		t.Errorf("err = %v", err)
	}
}
