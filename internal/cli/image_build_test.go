package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"banger/internal/daemon/daemontest"
	"banger/internal/imagebuild"
)

// proxied reports whether the last build set an apt proxy in the guest,
// and which one the build log names.
func proxied(t *testing.T, inst *daemontest.Instance, calls int, image string) (bool, string) {
	t.Helper()
	set := false
	for _, c := range inst.Host.Calls()[calls:] {
		if strings.HasPrefix(c, "guest-run ") && strings.Contains(c, "cat > "+imagebuild.AptProxyConf) {
			set = true
		}
	}
	img, err := inst.Client.Image(t.Context(), image)
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(img.BuildLog)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(log), "apt proxy ")
	return set, strings.Fields(rest + " ")[0]
}

func TestImageBuildAptProxyFromFlagAndConfig(t *testing.T) {
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	pkgs := filepath.Join(t.TempDir(), "packages.txt")
	if err := os.WriteFile(pkgs, []byte("git\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BANGER_APT_PROXY", "http://cache.lan:3142")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"fromconfig", nil, "http://cache.lan:3142/"},
		{"fromflag", []string{"--apt-proxy", "https://proxy.example:8443"}, "https://proxy.example:8443/"},
		{"none", []string{"--apt-proxy", ""}, "none"},
	} {
		calls := len(inst.Host.Calls())
		args := append([]string{"image", "build", tc.name, "--from", "base", "--packages-file", pkgs}, tc.args...)
		if _, errOut, code := run(t, args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		set, logged := proxied(t, inst, calls, tc.name)
		if set != (tc.want != "none") || logged != tc.want {
			t.Errorf("%s: proxy set in the guest %v, build log names %q; want %q", tc.name, set, logged, tc.want)
		}
	}
}

func TestImageBuildRefusesBadAptProxy(t *testing.T) {
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	_, errOut, code := run(t, "image", "build", "x", "--from", "base", "--apt-proxy", "cache.lan:3142")
	if code == 0 || !strings.Contains(errOut, "--apt-proxy: apt proxy \"cache.lan:3142\": no scheme") || !strings.Contains(errOut, "http://HOST[:PORT]") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	t.Setenv("BANGER_APT_PROXY", "http://cache.lan:3142/debian")
	_, errOut, code = run(t, "image", "build", "x", "--from", "base")
	if code == 0 || !strings.Contains(errOut, "config apt_proxy") || !strings.Contains(errOut, "no path") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	if calls := inst.Host.Calls(); len(calls) != 0 {
		t.Errorf("refused builds reached the host: %v", calls)
	}
}

func TestImageBootstrapKernelFromFlagAndConfig(t *testing.T) {
	inst := daemontest.Start(t, nil)
	for _, tc := range []struct {
		name, config string
		args         []string
		want         string
	}{
		{"plain", "", nil, "debian"},
		{"flag", "", []string{"--kernel", "microvm"}, "microvm"},
		{"config", "microvm", nil, "microvm"},
		{"flagwins", "microvm", []string{"--kernel", "debian"}, "debian"},
	} {
		t.Setenv("BANGER_BOOTSTRAP_KERNEL", tc.config)
		if tc.config == "" {
			os.Unsetenv("BANGER_BOOTSTRAP_KERNEL")
		}
		calls := len(inst.Host.Calls())
		args := append([]string{"image", "bootstrap", tc.name}, tc.args...)
		if _, errOut, code := run(t, args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		want := []string{"bootstrap " + tc.name + " kernel=" + tc.want}
		if got := grepCalls(inst.Host.Calls()[calls:], "bootstrap "); !slices.Equal(got, want) {
			t.Errorf("%v with bootstrap_kernel %q: daemon asked for %q, want %q", args, tc.config, got, want)
		}
	}
}
