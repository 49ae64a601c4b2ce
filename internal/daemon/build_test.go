package daemon_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"banger/internal/api"
	"banger/internal/daemon/daemontest"
	"banger/internal/guest"
	"banger/internal/imagebuild"
	"banger/internal/vm"
)

// buildInputs writes a package file naming a package and a local .deb, a
// file to copy, and returns a request using them.

// initReadyRun is the builder's first guest command: the wait for the
// build VM's systemd, which starts after sshd.
var initReadyRun = "guest-run " + strings.TrimSpace(guest.InitReadyScript)

func buildInputs(t *testing.T, name string) api.BuildImageRequest {
	t.Helper()
	dir := t.TempDir()
	deb := filepath.Join(dir, "hello_1.0_all.deb")
	os.WriteFile(deb, []byte("!<arch>\n"), 0o644)
	pkgs := filepath.Join(dir, "packages.txt")
	content := "# test packages\nhello\nhello_1.0_all.deb\n"
	os.WriteFile(pkgs, []byte(content), 0o644)
	src := filepath.Join(dir, "motd")
	os.WriteFile(src, []byte("built by banger\n"), 0o644)
	return api.BuildImageRequest{
		Name: name, Base: "base", PackagesFile: content, PackagesPath: pkgs,
		Copies:  []api.BuildCopy{{Src: src, Dest: "/etc/motd"}},
		Scripts: []api.BuildScript{{Name: "setup.sh", Content: "#!/bin/sh\necho hi\n"}},
		Modules: true,
	}
}

// noLeftovers fails unless the fake host holds nothing (no TAP, VMM, disk
// or DNS record), no VM exists, hidden or not, and the images directory
// holds only the base image.
func noLeftovers(t *testing.T, inst *daemontest.Instance) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(5 * time.Second)
	for {
		vms, err := inst.Client.VMs(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		state := inst.Host.State()
		entries, _ := os.ReadDir(inst.Paths.ImagesDir())
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if len(vms) == 0 && state == "" && strings.Join(names, " ") == "base" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind: %d vms %v, host state %q, images dir %v", len(vms), vms, state, names)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBuildImageWithFakes(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	req := buildInputs(t, "dev")

	var steps []string
	var sawOutput bool
	img, err := inst.Client.BuildImage(ctx, req, func(p api.Progress) {
		if !p.Finished && (len(steps) == 0 || steps[len(steps)-1] != p.Step) {
			steps = append(steps, p.Step)
		}
		if p.Step == "run-1" && strings.HasPrefix(p.Message, "ran: ") {
			sawOutput = true
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if img.Source != "build" || img.KernelVersion != "6.1.0-test" || img.Stale {
		t.Errorf("image = %+v", img)
	}
	if want := imagebuild.SHA256Hex([]byte(req.PackagesFile)); img.PackagesSHA256 != want {
		t.Errorf("packages sha256 = %s, want %s", img.PackagesSHA256, want)
	}
	manifest, err := os.ReadFile(img.Manifest)
	if err != nil || !strings.Contains(string(manifest), "hello 2.10-3 amd64\n") {
		t.Errorf("manifest = %q, %v", manifest, err)
	}
	if imagebuild.SHA256Hex(manifest) != img.ManifestSHA256 {
		t.Error("manifest sha256 does not match the manifest")
	}
	for _, p := range []string{img.Rootfs, img.Kernel, img.Initrd, filepath.Join(filepath.Dir(img.Rootfs), imagebuild.SidecarFile)} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("image file: %v", err)
		}
	}
	sc, err := imagebuild.ReadSidecar(filepath.Dir(img.Rootfs))
	if err != nil || sc.PackagesFile != req.PackagesPath || sc.Base != "base" || sc.Packages != 2 {
		t.Errorf("sidecar = %+v, %v", sc, err)
	}
	log, err := os.ReadFile(img.BuildLog)
	if err != nil {
		t.Fatalf("build log: %v", err)
	}
	timings, err := imagebuild.ParseTimings(log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := imagebuild.Summarize(timings); err != nil {
		t.Errorf("summarizing the build log: %v\n%s", err, log)
	}
	for _, want := range []string{"step=vm/boot kind=boot", "step=connect kind=boot", "step=packages kind=packages", "step=shutdown kind=shutdown", "$ upload ", "| ran: "} {
		if !strings.Contains(string(log), want) {
			t.Errorf("build log lacks %q:\n%s", want, log)
		}
	}
	if !sawOutput {
		t.Error("the script's output was not streamed as progress")
	}
	wantOrder := []string{"vm", "connect", "copy-1", "upload-debs", "packages", "modules", "run-1", "tidy", "sync", "shutdown", "commit", "assemble", "cleanup", "register"}
	if got := topLevel(steps); strings.Join(got, " ") != strings.Join(wantOrder, " ") {
		t.Errorf("steps = %v\nwant %v", got, wantOrder)
	}

	// The guest saw the copy, the uploads and the commands in order.
	var guest []string
	for _, c := range inst.Host.Calls() {
		switch {
		case strings.HasPrefix(c, "upload "), strings.HasPrefix(c, "guest-run "), strings.HasPrefix(c, "growroot "), strings.HasPrefix(c, "commitroot"):
			guest = append(guest, c)
		}
	}
	want := []string{
		initReadyRun, // connect waits for systemd
		"upload " + req.Copies[0].Src + " /etc/motd",
		"upload " + filepath.Join(filepath.Dir(req.PackagesPath), "hello_1.0_all.deb") + " " + imagebuild.WorkDir + "/debs/hello_1.0_all.deb",
		"guest-run DEBIAN_FRONTEND=noninteractive APT_LISTCHANGES_FRONTEND=none", // apt-get update
		"guest-run DEBIAN_FRONTEND=noninteractive APT_LISTCHANGES_FRONTEND=none", // apt-get install
		"guest-run apt-get clean",
		"guest-run set -e; m=/lib/modules/6.1.0-test;",
		"guest-run mkdir -p " + imagebuild.WorkDir,
		"guest-run rm -rf",
		"guest-run sync",
		"commitroot-move build-" + strings.TrimPrefix(filepath.Base(filepath.Dir(img.Rootfs)), "dev-"),
	}
	ok := len(guest) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = strings.HasPrefix(guest[i], want[i])
	}
	if !ok {
		t.Errorf("guest calls:\n%s\nwant:\n%s", strings.Join(guest, "\n"), strings.Join(want, "\n"))
	}
	if vms, _ := inst.Client.VMs(ctx, true); len(vms) != 0 || inst.Host.State() != "" {
		t.Errorf("after the build: vms %v, host %q", vms, inst.Host.State())
	}
	entries, _ := os.ReadDir(inst.Paths.ImagesDir())
	if len(entries) != 2 {
		t.Errorf("images dir holds %d entries, want base and dev", len(entries))
	}
}

// topLevel keeps the build's own steps, dropping nested ones (vm/clone)
// and the log notice.
func topLevel(steps []string) []string {
	var out []string
	for _, s := range steps {
		if strings.Contains(s, "/") || s == "log" {
			continue
		}
		if len(out) > 0 && out[len(out)-1] == s {
			continue
		}
		out = append(out, s)
	}
	return out
}

func TestBuildFailureAtEachStepLeavesNothing(t *testing.T) {
	for _, tc := range []struct{ fail, step string }{
		{"clone", "vm"},
		{"tap", "vm"},
		{"boot", "vm"},
		{"connect", "connect"},
		{"upload", "copy-1"},
		{"guest-run DEBIAN_FRONTEND=noninteractive", "packages"},
		{"shutdown", "shutdown"},
		{"commitroot-move", "commit"},
	} {
		t.Run(tc.fail, func(t *testing.T) {
			ctx := context.Background()
			inst := daemontest.Start(t, nil)
			inst.AddImage(t, "base")
			inst.Host.FailNext(tc.fail, errors.New("injected "+tc.fail+" failure"))
			_, err := inst.Client.BuildImage(ctx, buildInputs(t, "dev"), nil)
			var ae *api.Error
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v, want an api error", err)
			}
			if ae.Step != tc.step || !strings.Contains(ae.Message, "injected") {
				t.Errorf("error step %q message %q, want step %q", ae.Step, ae.Message, tc.step)
			}
			if len(ae.Logs) == 0 || !strings.Contains(ae.Logs[0], filepath.Join("builds", "dev-")) {
				t.Errorf("error logs %v lack the build log", ae.Logs)
			} else if log, err := os.ReadFile(ae.Logs[0]); err != nil || !strings.Contains(string(log), "injected") {
				t.Errorf("build log %s: %v\n%s", ae.Logs[0], err, log)
			}
			if _, err := inst.Client.Image(ctx, "dev"); err == nil {
				t.Error("image dev registered after a failed build")
			}
			noLeftovers(t, inst)
		})
	}
}

func TestBuildInterruptedLeavesNothing(t *testing.T) {
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	blocked := inst.Host.PauseGuestCommands()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := inst.Client.BuildImage(ctx, buildInputs(t, "dev"), nil)
		errc <- err
	}()
	select {
	case <-blocked:
	case err := <-errc:
		t.Fatalf("build ended before a guest command ran: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no guest command ran")
	}
	cancel() // the CLI's Ctrl-C: the request goes away
	if err := <-errc; err == nil {
		t.Fatal("interrupted build succeeded")
	}
	noLeftovers(t, inst)
	if _, err := inst.Client.Image(context.Background(), "dev"); err == nil {
		t.Error("image registered after an interrupted build")
	}
}

func TestReconcileRemovesOrphanBuildLeftovers(t *testing.T) {
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	ctx := context.Background()
	// What a daemon crash in the middle of a build leaves: a hidden VM with
	// a running VMM and a TAP, and a half-made image directory.
	blocked := inst.Host.PauseGuestCommands()
	bctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := inst.Client.BuildImage(bctx, buildInputs(t, "dev"), nil)
		errc <- err
	}()
	<-blocked
	vms, err := inst.Client.VMs(ctx, true)
	if err != nil || len(vms) != 1 || !vms[0].Hidden {
		t.Fatalf("during the build: %v %v", vms, err)
	}
	if visible, _ := inst.Client.VMs(ctx, false); len(visible) != 0 {
		t.Errorf("vm list shows the build vm: %v", visible)
	}
	stage := filepath.Join(inst.Paths.ImagesDir(), ".build-0123456789")
	os.MkdirAll(stage, 0o755)
	// While the build runs, reconcile leaves its VM alone.
	time.Sleep(200 * time.Millisecond)
	if vms, _ := inst.Client.VMs(ctx, true); len(vms) != 1 || vms[0].State != "running" {
		t.Fatalf("reconcile touched a running build's vm: %v", vms)
	}
	cancel()
	<-errc
	noLeftovers(t, inst)

	// A hidden VM no build owns (recorded by a daemon that crashed).
	v, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "build-feedbeef00", Image: "base", NoStart: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	row, err := inst.Daemon.Store().VM(ctx, v.Name)
	if err != nil {
		t.Fatal(err)
	}
	row.Hidden = true
	if err := inst.Daemon.Store().UpdateVM(ctx, &row); err != nil {
		t.Fatal(err)
	}
	noLeftovers(t, inst)
}

func TestCommitImageKeepsTheVM(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	c := inst.Client
	if _, _, err := c.CreateVM(ctx, api.CreateVMRequest{Name: "dev", Image: "base"}, nil); err != nil {
		t.Fatal(err)
	}
	_, err := c.CommitImage(ctx, api.CommitImageRequest{VM: "dev", Name: "mine"}, nil)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeConflict || !strings.Contains(ae.Hint, "vm stop dev") {
		t.Fatalf("committing a running vm: %v", err)
	}
	if _, err := c.StopVM(ctx, "dev", api.StopVMRequest{}, nil); err != nil {
		t.Fatal(err)
	}
	img, err := c.CommitImage(ctx, api.CommitImageRequest{VM: "dev", Name: "mine"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if img.Source != "commit" || img.Manifest == "" || img.BuildLog == "" {
		t.Errorf("image = %+v", img)
	}
	v, err := c.VM(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(v.RootDisk); err != nil {
		t.Errorf("the committed vm lost its root disk: %v", err)
	}
	if _, err := os.Stat(img.BuildLog); err != nil {
		t.Errorf("build log: %v", err)
	}
	// The committed image boots VMs.
	if _, _, err := c.CreateVM(ctx, api.CreateVMRequest{Name: "again", Image: "mine"}, nil); err != nil {
		t.Errorf("creating a vm from the committed image: %v", err)
	}
	if _, err := c.CommitImage(ctx, api.CommitImageRequest{VM: "dev", Name: "mine"}, nil); !errors.As(err, &ae) || ae.Code != api.CodeConflict {
		t.Errorf("committing over an existing image: %v", err)
	}
}

func TestStaleImagesAreMarkedAndWarned(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	c := inst.Client

	// Built from a user's package file that then changes.
	req := buildInputs(t, "custom")
	req.Modules = false
	if _, err := c.BuildImage(ctx, req, nil); err != nil {
		t.Fatal(err)
	}
	if img, _ := c.Image(ctx, "custom"); img.Stale {
		t.Error("fresh image is stale")
	}
	os.WriteFile(req.PackagesPath, []byte(req.PackagesFile+"jq\n"), 0o644)
	if img, _ := c.Image(ctx, "custom"); !img.Stale {
		t.Error("image not stale after its package file changed")
	}

	// Built from the default manifest: fresh now; an image recorded with
	// an older default manifest's hash is stale.
	if _, err := c.BuildImage(ctx, api.BuildImageRequest{Name: "dflt", Base: "base"}, nil); err != nil {
		t.Fatal(err)
	}
	img, _ := c.Image(ctx, "dflt")
	if img.Stale || img.PackagesSHA256 != imagebuild.DefaultPackagesSHA256() {
		t.Errorf("default-manifest image: stale %v sha %s", img.Stale, img.PackagesSHA256)
	}
	setup := false
	for _, call := range inst.Host.Calls() {
		setup = setup || strings.HasPrefix(call, "guest-run mkdir -p "+imagebuild.WorkDir+" && cat > "+imagebuild.WorkDir+"/01-default-setup.sh")
	}
	if !setup {
		t.Error("the default manifest's build did not run its setup script")
	}
	old := inst.AddImage(t, "old")
	old.PackagesSHA256 = strings.Repeat("0", 64)
	inst.Daemon.Store().DeleteImage(ctx, old.ID)
	if err := inst.Daemon.Store().CreateImage(ctx, &old); err != nil {
		t.Fatal(err)
	}
	imgs, err := c.Images(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stale := map[string]bool{}
	for _, i := range imgs {
		stale[i.Name] = i.Stale
	}
	if !stale["old"] || stale["dflt"] || stale["base"] || !stale["custom"] {
		t.Errorf("stale marks = %v", stale)
	}
	_, warnings, err := c.CreateVM(ctx, api.CreateVMRequest{Name: "dev", Image: "old", NoStart: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "stale") {
		t.Errorf("warnings = %v", warnings)
	}
	// The VM says so too, shown and listed.
	if v, err := c.VM(ctx, "dev"); err != nil || !v.StaleImage {
		t.Errorf("vm of a stale image: stale_image %v, %v", v.StaleImage, err)
	}
	if vms, err := c.VMs(ctx, false); err != nil || len(vms) != 1 || !vms[0].StaleImage {
		t.Errorf("listed vm of a stale image: %+v, %v", vms, err)
	}
}

// The apt proxy is set before apt runs and removed before the guest shuts
// down, so the committed image does not keep it.
func TestBuildWithAptProxy(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	req := api.BuildImageRequest{Name: "dev", Base: "base", PackagesFile: "git\n", AptProxy: "http://192.168.1.10:3142"}
	img, err := inst.Client.BuildImage(ctx, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	var guest []string
	for _, c := range inst.Host.Calls() {
		if strings.HasPrefix(c, "guest-run ") || strings.HasPrefix(c, "commitroot") {
			guest = append(guest, c)
		}
	}
	want := []string{
		initReadyRun,
		"guest-run mkdir -p /etc/apt/apt.conf.d && cat > " + imagebuild.AptProxyConf,
		"guest-run DEBIAN_FRONTEND=noninteractive APT_LISTCHANGES_FRONTEND=none apt-get update",
		"guest-run DEBIAN_FRONTEND=noninteractive APT_LISTCHANGES_FRONTEND=none apt-get install",
		"guest-run apt-get clean",
		"guest-run rm -rf " + imagebuild.AptProxyConf,
		"guest-run sync",
		"commitroot-move ",
	}
	ok := len(guest) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = strings.HasPrefix(guest[i], want[i])
	}
	if !ok {
		t.Errorf("guest calls:\n%s\nwant:\n%s", strings.Join(guest, "\n"), strings.Join(want, "\n"))
	}
	log, _ := os.ReadFile(img.BuildLog)
	if !strings.Contains(string(log), "apt proxy http://192.168.1.10:3142/") || !strings.Contains(string(log), "step=apt-proxy kind=builder") {
		t.Errorf("build log does not show the proxy:\n%s", log)
	}
}

func TestBuildRejectsBadRequestsWithoutSideEffects(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	for name, req := range map[string]api.BuildImageRequest{
		"bad name":        {Name: "Bad_Name", Base: "base", NoPackages: true},
		"no base":         {Name: "x", Base: "nope", NoPackages: true},
		"shrink":          {Name: "x", Base: "base", NoPackages: true, SizeBytes: vm.MiB},
		"bad package":     {Name: "x", Base: "base", PackagesFile: "not/a package\n"},
		"relative copy":   {Name: "x", Base: "base", NoPackages: true, Copies: []api.BuildCopy{{Src: "rel", Dest: "/x"}}},
		"missing copy":    {Name: "x", Base: "base", NoPackages: true, Copies: []api.BuildCopy{{Src: "/nonexistent/banger", Dest: "/x"}}},
		"empty script":    {Name: "x", Base: "base", NoPackages: true, Scripts: []api.BuildScript{{Name: "a", Content: " "}}},
		"existing":        {Name: "base", Base: "base", NoPackages: true},
		"bad apt proxy":   {Name: "x", Base: "base", AptProxy: "cache:3142"},
		"apt proxy shell": {Name: "x", Base: "base", AptProxy: "http://h\";\nrm -rf /"},
	} {
		if _, err := inst.Client.BuildImage(ctx, req, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if len(inst.Host.Calls()) != 0 {
		t.Errorf("rejected builds touched the host: %v", inst.Host.Calls())
	}
	noLeftovers(t, inst)
}
