package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func isolate(t testing.TB) Paths {
	t.Helper()
	dir := t.TempDir()
	for _, v := range []string{"XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME"} {
		t.Setenv(v, filepath.Join(dir, strings.ToLower(v)))
	}
	for _, k := range Keys() {
		t.Setenv(EnvName(k), "")
		os.Unsetenv(EnvName(k))
	}
	return DefaultPaths()
}

func TestPathsFollowXDG(t *testing.T) {
	p := isolate(t)
	for name, path := range map[string]string{"config": p.ConfigFile, "state": p.StateDir, "data": p.DataDir, "runtime": p.RuntimeDir, "socket": p.Socket(), "db": p.Database()} {
		if !strings.Contains(path, "xdg_") {
			t.Errorf("%s path %s does not derive from the XDG variables", name, path)
		}
	}
	if !strings.HasSuffix(p.Socket(), "xdg_runtime_dir/banger/bangerd.sock") {
		t.Errorf("socket = %s", p.Socket())
	}
}

func TestLoadSources(t *testing.T) {
	p := isolate(t)
	if err := os.MkdirAll(filepath.Dir(p.ConfigFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.ConfigFile, []byte("log_level = \"debug\"\ndefault_cpus = 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BANGER_DEFAULT_CPUS", "8")
	l, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range l.Settings() {
		got[s.Key] = s.Value + "/" + string(s.Source)
	}
	want := map[string]string{"log_level": "debug/file", "default_cpus": "8/env", "bridge": "banger0/default"}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %s, want %s", k, got[k], w)
		}
	}
}

func TestLoadRejectsUnknownKeysAndBadValues(t *testing.T) {
	p := isolate(t)
	_ = os.MkdirAll(filepath.Dir(p.ConfigFile), 0o755)
	cases := map[string]string{
		"brige = \"x\"\n":                "unknown keys brige",
		"subnet = \"10.0.0.0/30\"\n":     "config subnet",
		"default_disk = \"8X\"\n":        "default_disk",
		"log_level = \"loud\"\n":         "log_level",
		"this is not toml":               "parsing config",
		"stop_timeout = \"forever\"\n":   "stop_timeout",
		"dns_listen = \"localhost\"\n":   "dns_listen",
		"apt_proxy = \"cache:3142\"\n":   "config apt_proxy",
		"bootstrap_kernel = \"linux\"\n": "config bootstrap_kernel",
	}
	for content, want := range cases {
		if err := os.WriteFile(p.ConfigFile, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(p)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config %q: err = %v, want it to mention %q", content, err, want)
		}
	}
}

func TestDefaultsValid(t *testing.T) {
	d := Defaults()
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestDocsListEveryKey keeps docs/config.md's table equal to the keys the
// configuration accepts, in order.
func TestDocsListEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, line := range strings.Split(string(doc), "\n") {
		if k, ok := strings.CutPrefix(line, "| `"); ok {
			documented = append(documented, k[:strings.Index(k, "`")])
		}
	}
	if diff := cmp.Diff(Keys(), documented); diff != "" {
		t.Errorf("docs/config.md lists other keys than the configuration accepts (-accepted +documented):\n%s", diff)
	}
}

// Test daemons listen on a free port; the daemon reports which one.
func TestDNSListenAcceptsPortZero(t *testing.T) {
	p := isolate(t)
	t.Setenv(EnvName("dns_listen"), "127.0.0.1:0")
	l, err := Load(p)
	if err != nil {
		t.Fatalf("dns_listen 127.0.0.1:0: %v", err)
	}
	if l.DNSListen != "127.0.0.1:0" {
		t.Errorf("dns_listen = %q, want 127.0.0.1:0", l.DNSListen)
	}
}

func TestRetiredKeysSayWhy(t *testing.T) {
	dir := t.TempDir()
	paths := Paths{ConfigFile: dir + "/config.toml"}
	if err := os.WriteFile(paths.ConfigFile, []byte("vmm_sudo = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(paths)
	if err == nil || !strings.Contains(err.Error(), "vmm_sudo is gone") || !strings.Contains(err.Error(), "remove it") {
		t.Errorf("config with vmm_sudo: %v", err)
	}
}
