package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"banger/internal/bootstrap"
	"banger/internal/imagebuild"
	"banger/internal/testutil"
)

// buildTimeout bounds an image build of the default manifest: several
// hundred MiB of packages installed under software emulation.
const buildTimeout = 45 * time.Minute

// TestDefaultImageRunsContainers is issue 15's proof that the default
// image runs containers as it is: it builds an image from the default
// manifest, its guest fetching packages through a mirror proxy in the
// test's namespace (--apt-proxy), boots a VM from it and runs an imported
// container under Docker's default confinement, AppArmor's docker-default
// profile.
func TestDefaultImageRunsContainers(t *testing.T) {
	if testutil.GuestKernel() == bootstrap.KernelMicrovm {
		t.Skip("containers need the debian kernel: the microvm kernel is built without netfilter, bridges and AppArmor (docs/images.md)")
	}
	e := newGuestEnv(t)
	testutil.RequireTool(t, "debugfs")
	e.must("image", "bootstrap", "base")
	mirrors, suite := imageSources(t, e, "base")
	proxy, err := newMirrorProxy(mirrors...)
	if err != nil {
		t.Skipf("the base image's apt sources %v: %v", mirrors, err)
	}
	if err := proxy.probe(suite); err != nil {
		t.Skipf("the Debian mirror %s is unreachable from this host (%v); building the default image needs it", mirrors[0], err)
	}
	proxyURL := e.serveMirrorProxy(proxy)
	t.Cleanup(func() { t.Logf("apt proxy %s: %s", proxyURL, proxy.Summary()) })
	hello := buildHello(t)

	start := time.Now()
	out, errOut, code := e.bangerWithin(buildTimeout, "image", "build", "docker", "--from", "base", "--apt-proxy", proxyURL)
	buildTime := time.Since(start)
	if code != 0 {
		t.Fatalf("image build of the default manifest: exit %d after %s\nstdout: %s\nstderr tail:\n%s\nbuild log tail:\n%s\ndaemon log tail:\n%s",
			code, buildTime.Round(time.Second), out, tail(errOut, 30), tail(e.failedBuildLog(), 60), e.daemonLogTail())
	}
	t.Logf("image build docker (default manifest, apt through the proxy): %s\n%s", buildTime.Round(time.Second), out)
	if proxy.Served() == 0 {
		t.Error("the build fetched nothing through the proxy, its only way to the mirror")
	}
	img, err := e.client().Image(context.Background(), "docker")
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(img.BuildLog)
	if err != nil {
		t.Fatalf("build log: %v", err)
	}
	if b, err := summarize(log); err == nil {
		t.Logf("build breakdown: %s", b)
	}
	if !proxySetAndRemoved(string(log), proxyURL+"/") {
		t.Errorf("the build log does not show the proxy set and then removed:\n%s", tail(string(log), 40))
	}
	// The committed image holds no proxy configuration (read off the
	// image's root file system here, from a VM made of it below) and
	// none of the build VM's docker state.
	for _, p := range []string{imagebuild.AptProxyConf, "/var/lib/docker"} {
		if out, _ := exec.Command("debugfs", "-R", "stat "+p, img.Rootfs).CombinedOutput(); !strings.Contains(string(out), "File not found") {
			t.Errorf("%s is in the committed image:\n%s", p, out)
		}
	}

	start = time.Now()
	e.mustWithin(10*time.Minute, "vm", "create", "dock", "--image", "docker", "--cpus", "2", "--memory", "1G", "--disk", "1G", "--wait")
	t.Logf("vm create from the docker image to ssh ready: %s", time.Since(start).Round(time.Millisecond))
	if got := e.ssh("dock", "ls /etc/apt/apt.conf.d; apt-config dump | grep -i proxy || echo no-proxy"); strings.Contains(got, "banger") || !strings.HasSuffix(got, "no-proxy") {
		t.Errorf("apt configuration of a vm made from the image:\n%s", got)
	}

	start = time.Now()
	wait := "timeout 540 sh -c 'until docker info >/dev/null 2>&1; do systemctl is-failed -q docker.service && exit 3; sleep 1; done'"
	if out, errOut, code := e.bangerWithin(10*time.Minute, "vm", "ssh", "dock", "--", wait); code != 0 {
		journal, _, _ := e.banger("vm", "ssh", "dock", "--", "systemctl status --no-pager docker.service | head -5; journalctl --no-pager -u docker.service | tail -20")
		t.Fatalf("docker did not start in the vm (exit %d after %s): %s%s\n%s", code, time.Since(start).Round(time.Second), out, errOut, journal)
	}
	t.Logf("docker daemon ready %s after ssh", time.Since(start).Round(time.Millisecond))
	info := e.ssh("dock", "echo root=$(findmnt -no FSTYPE /); docker info --format 'security={{json .SecurityOptions}} driver={{.Driver}} dir={{.DockerRootDir}} cgroup={{.CgroupVersion}}'")
	t.Logf("docker info: %s", strings.ReplaceAll(info, "\n", " "))
	if !strings.Contains(info, `"name=apparmor"`) {
		t.Errorf("docker does not confine with AppArmor: %s", info)
	}
	// On a layered root (an overlay) too, docker keeps its data on the
	// work disk's ext4 with its own overlay2 driver.
	if !strings.Contains(info, "driver=overlay2 dir=/work/docker ") {
		t.Errorf("docker's storage is not overlay2 in /work/docker: %s", info)
	}

	e.ssh("dock", "mkdir -p /root/ctr")
	e.must("vm", "cp", hello, "dock:/root/ctr/hello")
	e.ssh("dock", "tar -C /root/ctr -c . | docker import - banger-e2e:1")

	run := e.ssh("dock", `s=$(date +%s%N); docker run --rm banger-e2e:1 /hello; echo "took $(( ($(date +%s%N) - s) / 1000000 )) ms"`)
	t.Logf("docker run --rm banger-e2e:1 /hello:\n%s", run)
	if !strings.Contains(run, "hello from a container in a banger VM") {
		t.Errorf("docker run printed %q", run)
	}
	if !strings.Contains(run, "apparmor: docker-default (enforce)") {
		t.Errorf("the container does not run under docker-default:\n%s", run)
	}
	e.ssh("dock", "docker run --name confined banger-e2e:1 /hello")
	if got := e.ssh("dock", "docker inspect --format '{{.AppArmorProfile}}' confined && docker rm confined >/dev/null"); got != "docker-default" {
		t.Errorf("AppArmorProfile of a container = %q, want docker-default", got)
	}

	e.must("vm", "rm", "--force", "dock")
	e.must("image", "rm", "docker")
	left := e.buildLeftovers(nil)
	entries, _ := os.ReadDir(filepath.Join(e.home, "data", "banger", "images"))
	for _, en := range entries {
		if strings.HasPrefix(en.Name(), "docker") {
			left = append(left, "image dir "+en.Name())
		}
	}
	if len(left) != 0 {
		t.Errorf("left behind:\n%s", strings.Join(left, "\n"))
	}
}

// proxySetAndRemoved reports whether a build log names the apt proxy url
// and its last command touching the proxy's configuration removes it.
func proxySetAndRemoved(log, url string) bool {
	last := ""
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, " $ ") && strings.Contains(l, imagebuild.AptProxyConf) {
			last = l
		}
	}
	return strings.Contains(log, "apt proxy "+url) && strings.Contains(last, " $ rm -rf ")
}

// imageSources reads the apt sources of image name off its root file
// system: the archive URIs and the first suite.
func imageSources(t *testing.T, e *env, name string) ([]string, string) {
	t.Helper()
	img, err := e.client().Image(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("debugfs", "-R", "cat /etc/apt/sources.list", img.Rootfs).Output()
	if err != nil {
		t.Fatalf("reading the apt sources of image %s: %v", name, err)
	}
	var uris []string
	suite := ""
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" || strings.HasPrefix(f[1], "[") {
			continue
		}
		uris = append(uris, f[1])
		if suite == "" {
			suite = f[2]
		}
	}
	if len(uris) == 0 {
		t.Fatalf("image %s's /etc/apt/sources.list names no archive:\n%s", name, out)
	}
	return uris, suite
}

// buildHello builds testdata/hello, static, for the guest.
func buildHello(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hello")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./testdata/hello")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building testdata/hello: %v\n%s", err, out)
	}
	return bin
}

// failedBuildLog is the newest build log a failed build left in the state
// directory.
func (e *env) failedBuildLog() string {
	logs, _ := filepath.Glob(filepath.Join(e.home, "state", "banger", "builds", "*.log"))
	newest, at := "", time.Time{}
	for _, l := range logs {
		if st, err := os.Stat(l); err == nil && st.ModTime().After(at) {
			newest, at = l, st.ModTime()
		}
	}
	if newest == "" {
		return "(no build log)"
	}
	data, _ := os.ReadFile(newest)
	return string(data)
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]")

// tail returns the last n lines of s, without terminal escapes.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(ansi.ReplaceAllString(s, "")), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func TestProxySetAndRemovedReadsBuildLogs(t *testing.T) {
	set := "    +0.000s building image docker from base: … apt proxy http://198.18.0.1:4242/\n" +
		"   +36.713s $ mkdir -p /etc/apt/apt.conf.d && cat > " + imagebuild.AptProxyConf + "\n"
	removed := "  +313.878s $ rm -rf /var/tmp/banger-build " + imagebuild.AptProxyConf + "\n"
	if !proxySetAndRemoved(set+removed, "http://198.18.0.1:4242/") {
		t.Error("a log that sets and removes the proxy is not recognised")
	}
	if proxySetAndRemoved(set, "http://198.18.0.1:4242/") || proxySetAndRemoved(removed+set, "http://198.18.0.1:4242/") {
		t.Error("a log that leaves the proxy set passes")
	}
}
