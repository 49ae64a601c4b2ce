package e2e

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"banger/internal/allocation"
	"banger/internal/testutil"
)

// The package is built once per test process by `make deb`, into a
// temporary directory.
var (
	debOnce sync.Once
	debWork string
	debPath string
	debErr  error
	debOut  []byte
)

// buildDeb runs `make deb` with the binaries and the package in a
// temporary directory and returns the package's path.
func buildDeb(t *testing.T) string {
	t.Helper()
	testutil.Short(t, "builds the Debian package (about a minute)")
	testutil.RequireTool(t, "make", "dpkg-deb", "dpkg", "go")
	debOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		work, err := os.MkdirTemp("", "banger-deb-")
		if err != nil {
			debErr = err
			return
		}
		debWork = work
		// The package's files must be readable by apt's unprivileged _apt user.
		_ = os.Chmod(work, 0o755)
		cmd := exec.Command("make", "-s", "-C", root, "deb", "BINDIR="+filepath.Join(work, "bin"), "DISTDIR="+filepath.Join(work, "dist"), "DEB_VERSION=0.0~e2e")
		debOut, debErr = cmd.CombinedOutput()
		if debErr == nil {
			lines := strings.Split(strings.TrimSpace(string(debOut)), "\n")
			debPath = lines[len(lines)-1]
		}
	})
	if debErr != nil {
		t.Fatalf("make deb: %v\n%s", debErr, debOut)
	}
	return debPath
}

// removeDeb deletes what buildDeb built; TestMain calls it.
func removeDeb() {
	if debWork != "" {
		os.RemoveAll(debWork)
	}
}

// TestDebianPackageLintian: lintian finds no error in the package.
func TestDebianPackageLintian(t *testing.T) {
	testutil.RequireTool(t, "lintian")
	deb := buildDeb(t)
	// lintian leaves its ELF cache files (mldbm-elf-*) in $TMPDIR.
	lint := exec.Command("lintian", "--tag-display-limit", "0", deb)
	lint.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	out, _ := lint.CombinedOutput()
	t.Logf("lintian %s:\n%s", filepath.Base(deb), out)
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "E: ") {
			t.Errorf("lintian error: %s", line)
		}
	}
}

// requireNoBanger skips unless this host has no banger package, no
// banger in /usr/bin and no set-up user: the test installs and purges the
// package, and purging removes every user's set-up.
func requireNoBanger(t *testing.T) {
	t.Helper()
	if err := exec.Command("dpkg", "-s", "banger").Run(); err == nil {
		t.Skip("the banger package is installed on this host; the package test never installs over it")
	}
	for _, p := range []string{"/usr/bin/banger", "/usr/bin/bangerd"} {
		if _, err := os.Lstat(p); err == nil {
			t.Skipf("%s exists; the package test never installs over a banger installation", p)
		}
	}
	if recs, _ := filepath.Glob("/etc/banger/users/*.json"); len(recs) > 0 {
		t.Skipf("users are set up for banger on this host (%s); purging the package would take their set-up away", strings.Join(recs, " "))
	}
}

// bangerFiles lists paths outside homes and temporary directories whose
// names contain "banger".
func bangerFiles() []string {
	var found []string
	for _, top := range []string{"/etc", "/usr", "/var/lib", "/run", "/opt"} {
		_ = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() && (p == "/run/netns" || p == "/run/user" || p == "/proc") {
				return filepath.SkipDir
			}
			if strings.Contains(d.Name(), "banger") {
				found = append(found, p)
				if d.IsDir() {
					return filepath.SkipDir
				}
			}
			return nil
		})
	}
	return found
}

// TestDebianPackage builds the package with `make deb`, installs it with
// `apt-get install ./banger_….deb`, runs the quickstart story (create,
// exec, rm) as a user who is not root against the installed binaries,
// checks man pages and completions, then removes and purges it and checks
// that no bridge, chain, unit or banger file is left and ip_forward is as
// it was. apt-get runs inside the test's network namespace, so the
// package scripts' teardown acts on the namespace, and apt cannot reach a
// mirror: the package's dependencies must be installed (.ci/run does).
func TestDebianPackage(t *testing.T) {
	testutil.RequireTool(t, "apt-get", "dpkg", "man", "bash")
	testutil.RequireRoot(t)
	requireNoBanger(t)
	g := newGuestEnv(t)
	deb := buildDeb(t)
	inNS := func(argv ...string) (string, error) {
		cmd := exec.Command("ip", append([]string{"netns", "exec", g.netns}, argv...)...)
		cmd.Env = append(cleanEnv(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	readForward := func() string {
		out, err := inNS("cat", "/proc/sys/net/ipv4/ip_forward")
		if err != nil {
			t.Fatalf("reading ip_forward in %s: %v: %s", g.netns, err, out)
		}
		return strings.TrimSpace(out)
	}
	hostForward := func() string {
		b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		return strings.TrimSpace(string(b))
	}
	forwardBefore, hostBefore := readForward(), hostForward()

	installed := false
	t.Cleanup(func() {
		if installed {
			out, err := inNS("apt-get", "purge", "-y", "banger")
			t.Logf("purging the package after a failure: %v\n%s", err, out)
		}
	})
	if out, err := inNS("apt-get", "install", "-y", "--no-install-recommends", deb); err != nil {
		t.Fatalf("apt-get install %s: %v\n%s", deb, err, out)
	}
	installed = true
	listed, err := exec.Command("dpkg", "-L", "banger").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"/usr/bin/banger", "/usr/bin/bangerd", "/usr/bin/banger-vmm-qemu", "/usr/bin/banger-helper",
		"/usr/lib/systemd/user/bangerd.service", "/usr/share/man/man1/banger-vm-create.1.gz",
		"/usr/share/bash-completion/completions/banger", "/usr/share/zsh/vendor-completions/_banger",
		"/usr/share/fish/vendor_completions.d/banger.fish", "/usr/share/banger/packages/default.txt", "/usr/share/doc/banger/copyright"} {
		if !bytes.Contains(listed, []byte(want+"\n")) {
			t.Errorf("the package lacks %s", want)
		}
	}

	// The story as a user, with the installed binaries only.
	u := g.asNewUser(t, false)
	u.bin = "/usr/bin"
	u.vars = dropVar(u.vars, "BANGER_DAEMON")
	admin := &env{t: t, bin: "/usr/bin", netns: g.netns, vars: dropVar(g.vars, "BANGER_DAEMON"), extraNetns: g.extraNetns}
	t.Logf("system setup:\n%s", admin.must("system", "setup", "--user", u.user.name))
	u.must("image", "bootstrap", "base")
	u.must("vm", "create", "qs", "--cpus", "1", "--memory", "512M", "--disk", "64M")
	if got := strings.TrimSpace(u.must("vm", "exec", "qs", "--", "uname", "-s")); got != "Linux" {
		t.Errorf("vm exec qs -- uname -s = %q", got)
	}
	if st := u.status(); st.Executable != "/usr/bin/bangerd" {
		t.Errorf("the daemon runs %s, want the installed /usr/bin/bangerd", st.Executable)
	}
	if v := u.must("version"); !strings.Contains(v, "(/usr/bin/banger-vmm-qemu)") || !strings.Contains(v, "(pid ") {
		t.Errorf("banger version does not name the running daemon and the installed vmm:\n%s", v)
	}
	t.Run("completions name vms", func(t *testing.T) {
		u := u.with(t)
		if out := u.must("__complete", "vm", "exec", ""); !strings.Contains(out, "qs\n") {
			t.Errorf("banger __complete vm exec '' = %q, want qs", out)
		}
		const lib = "/usr/share/bash-completion/bash_completion"
		if _, err := os.Stat(lib); err != nil {
			t.Skipf("bash-completion is not installed (%s); .ci/run installs it", lib)
		}
		script := `. ` + lib + `; . /usr/share/bash-completion/completions/banger
COMP_WORDS=(banger vm ssh q); COMP_CWORD=3; COMP_LINE="banger vm ssh q"; COMP_POINT=${#COMP_LINE}
__start_banger 2>/dev/null; printf '%s\n' "${COMPREPLY[@]}"`
		argv := []string{"ip", "netns", "exec", u.netns, "setpriv", "--reuid=" + u.user.name, "--regid=" + strconv.Itoa(u.user.gid), "--init-groups", "--", "bash", "-c", script}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(cleanEnv(), u.vars...)
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "qs" {
			t.Errorf("bash completion of `banger vm ssh q`: %v: %q, want qs", err, out)
		}
	})
	t.Run("man pages", func(t *testing.T) {
		for page, want := range map[string]string{"banger-vm-create": "banger vm create NAME", "bangerd": "systemctl --user enable --now bangerd"} {
			out, err := exec.Command("man", "-P", "cat", page).CombinedOutput()
			if err != nil || !strings.Contains(strings.Join(strings.Fields(string(out)), " "), want) {
				t.Errorf("man %s: %v, lacks %q:\n%s", page, err, want, out)
			}
		}
	})
	if f := readForward(); f != "1" {
		t.Errorf("ip_forward in the namespace is %s with a vm running", f)
	}
	u.must("vm", "rm", "--force", "qs")

	// Remove: the teardown leaves no daemon, bridge, chain or unit, and
	// ip_forward as it was.
	out, err := inNS("apt-get", "remove", "-y", "banger")
	if err != nil {
		t.Fatalf("apt-get remove banger: %v\n%s", err, out)
	}
	t.Logf("apt-get remove:\n%s", out)
	if !strings.Contains(out, "banger's footprint on this host is gone for "+u.user.name) {
		t.Errorf("removal did not tear down %s's footprint", u.user.name)
	}
	if links, _ := inNS("ip", "-o", "link", "show"); strings.Contains(links, "banger") {
		t.Errorf("a banger bridge is left after remove:\n%s", links)
	}
	for _, save := range []string{"iptables-nft-save", "iptables-legacy-save"} {
		if rules, err := inNS(save); err == nil && strings.Contains(rules, "BANGER") {
			t.Errorf("banger chains left after remove (%s):\n%s", save, rules)
		}
	}
	if f := readForward(); f != forwardBefore {
		t.Errorf("ip_forward in the namespace is %s after remove, was %s", f, forwardBefore)
	}
	if f := hostForward(); f != hostBefore {
		t.Errorf("the host's ip_forward is %s, was %s", f, hostBefore)
	}
	for _, p := range []string{"/usr/lib/systemd/user/bangerd.service", "/usr/bin/banger", "/usr/bin/bangerd"} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is left after remove", p)
		}
	}
	if procs := livingProcesses(u.user.name); len(procs) > 0 {
		t.Errorf("processes of %s left after remove: %q", u.user.name, procs)
	}

	// Purge: nothing of banger's outside homes.
	if out, err := inNS("apt-get", "purge", "-y", "banger"); err != nil {
		t.Fatalf("apt-get purge banger: %v\n%s", err, out)
	}
	installed = false
	if err := exec.Command("dpkg", "-s", "banger").Run(); err == nil {
		t.Error("dpkg still knows the banger package after purge")
	}
	if left := bangerFiles(); len(left) > 0 {
		t.Errorf("banger files left after purge: %q", left)
	}
}

// dropVar returns vars without NAME=….
func dropVar(vars []string, name string) []string {
	var out []string
	for _, kv := range vars {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// TestMakeInstallMirrorsThePackage: `make install` lays out the package's
// files (less its Debian metadata), and `make uninstall` removes them all.
func TestMakeInstallMirrorsThePackage(t *testing.T) {
	deb := buildDeb(t)
	listing, err := exec.Command("dpkg-deb", "--fsys-tarfile", deb).Output()
	if err != nil {
		t.Fatalf("dpkg-deb --fsys-tarfile: %v", err)
	}
	tarList := exec.Command("tar", "-t")
	tarList.Stdin = bytes.NewReader(listing)
	names, err := tarList.Output()
	if err != nil {
		t.Fatalf("listing the package: %v", err)
	}
	want := map[string]bool{}
	for _, n := range strings.Split(strings.TrimSpace(string(names)), "\n") {
		n = strings.TrimPrefix(n, ".")
		if n == "" || strings.HasSuffix(n, "/") || n == "/usr/share/doc/banger/copyright" || n == "/usr/share/doc/banger/changelog.gz" {
			continue
		}
		want[n] = true
	}
	dest := t.TempDir()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	// A runtime bundle (its description is all the installed banger reads
	// to find it) goes to lib/banger.
	bundle := t.TempDir()
	if err := os.WriteFile(filepath.Join(bundle, "bundle.json"), []byte(`{"version":1,"name":"fake","files":{}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	make := func(target string) {
		cmd := exec.Command("make", "-s", "-C", root, target, "BINDIR="+filepath.Join(filepath.Dir(filepath.Dir(deb)), "bin"), "DESTDIR="+dest, "PREFIX=/usr", "RUNTIME="+bundle)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, out)
		}
	}
	make("install")
	got := map[string]bool{}
	_ = filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			got[strings.TrimPrefix(p, dest)] = true
		}
		return nil
	})
	for n := range want {
		if !got[n] {
			t.Errorf("make install lacks the package's %s", n)
		}
	}
	for n := range got {
		if !want[n] && n != "/usr/lib/banger/bundle.json" {
			t.Errorf("make install adds %s, which the package lacks", n)
		}
	}
	// The installed banger finds the bundle as ../lib/banger.
	status := exec.Command(filepath.Join(dest, "usr", "bin", "banger"), "runtime", "status", "-o", "json")
	status.Dir = t.TempDir()
	status.Env = append(cleanEnv(), "XDG_CONFIG_HOME="+status.Dir)
	out, err := status.Output()
	if want := `"Dir": "` + filepath.Join(dest, "usr", "lib", "banger") + `"`; err != nil || !strings.Contains(string(out), `"found": {`) || !strings.Contains(string(out), want) {
		t.Errorf("runtime status of the installed banger: %v, want the bundle found at %s:\n%s", err, want, out)
	}
	// The user unit runs the installed daemon and stops only it.
	unit, err := os.ReadFile(filepath.Join(dest, "usr", "lib", "systemd", "user", "bangerd.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"ExecStart=/usr/bin/bangerd", "KillMode=process", "WantedBy=default.target"} {
		if !strings.Contains(string(unit), "\n"+line+"\n") {
			t.Errorf("bangerd.service lacks %q:\n%s", line, unit)
		}
	}
	make("uninstall")
	_ = filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("make uninstall left %s", strings.TrimPrefix(p, dest))
		}
		return nil
	})
}

// TestPurgeRevokesWhatSetupGranted runs postrm's revoke on an allocation
// as banger writes it, with stand-ins for the account tools: the shell's
// reading of the record must follow its JSON.
func TestPurgeRevokesWhatSetupGranted(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	postrm, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "packaging", "debian", "postrm"))
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.Index(postrm, []byte("revoke() {\n"))
	end := bytes.Index(postrm[start:], []byte("\n}\n"))
	if start < 0 || end < 0 {
		t.Fatal("postrm defines no revoke() function")
	}
	fn := string(postrm[start : start+end+3])

	a, err := allocation.Allocate("alice.b", 1001, nil, allocation.Host{}, allocation.DefaultPool())
	if err != nil {
		t.Fatal(err)
	}
	a.Granted = allocation.Granted{Groups: []string{"kvm", "render"}, SubIDs: "165536:65536"}
	data, err := allocation.Encode(a)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	record := filepath.Join(dir, "alice.b.json")
	if err := os.WriteFile(record, data, 0o644); err != nil {
		t.Fatal(err)
	}
	calls := filepath.Join(dir, "calls")
	for _, tool := range []string{"id", "gpasswd", "usermod", "rm"} {
		stub := "#!/bin/sh\necho " + tool + ` "$@" >>` + calls + "\n"
		if err := os.WriteFile(filepath.Join(dir, tool), []byte(stub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("sh", "-c", fn+"\nrevoke "+record)
	cmd.Env = append(cleanEnv(), "PATH="+dir+":"+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	got, _ := os.ReadFile(calls)
	want := `rm -f /etc/sudoers.d/banger-alice_b
id alice.b
gpasswd -d alice.b kvm
gpasswd -d alice.b render
usermod --del-subuids 165536-231071 --del-subgids 165536-231071 alice.b
`
	if string(got) != want {
		t.Errorf("revoke ran:\n%s\nwant:\n%s\nfor the record:\n%s", got, want, data)
	}
}
