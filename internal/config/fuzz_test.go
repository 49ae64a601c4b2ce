package config

import (
	"os"
	"strings"
	"testing"
)

// FuzzLoad writes arbitrary bytes as the config file and loads it. A file
// Load refuses gets an error that names the file or the key at fault; a
// file it accepts yields only values the daemon can use as they are
// (MustDuration, MustSize and the network code trust them).
func FuzzLoad(f *testing.F) {
	for _, s := range []string{
		"",
		"log_level = \"debug\"\n",
		"vmm = \"banger-vmm-qemu\"\nbridge = \"br-test\"\nsubnet = \"10.9.0.0/24\"\ndns_listen = \"127.0.0.1:0\"\ndns_guest_port = 42069\n",
		"default_cpus = 4\ndefault_memory = \"2G\"\ndefault_disk = \"16G\"\nstop_timeout = \"30s\"\nreconcile_interval = \"500ms\"\n",
		"apt_proxy = \"http://192.168.1.10:3142\"\n",
		"vmm_sudo = true\n",
		"unknown = 1\n",
		"log_level = [1, 2]\n",
		"[section]\nkey = 1\n",
		"default_cpus = 9223372036854775807\n",
		"stop_timeout = \"-1s\"\n",
		"default_memory = \"0\"\n",
		"subnet = \"10.0.0.0/30\"\n",
		"bridge = \"\"\n",
		"\"log_level\" = 'info'\n",
		"log_level = \"\"\"\ninfo\"\"\"\n",
		"\x00",
	} {
		f.Add([]byte(s))
	}
	paths := isolate(f)
	if err := os.MkdirAll(strings.TrimSuffix(paths.ConfigFile, "/config.toml"), 0o755); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(paths.ConfigFile, data, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := Load(paths)
		if err != nil {
			if msg := err.Error(); !strings.Contains(msg, paths.ConfigFile) && !strings.Contains(msg, "config ") {
				t.Fatalf("Load error %q names neither the file nor the key", msg)
			}
			return
		}
		c := l.Config
		if MustDuration(c.StopTimeout) <= 0 || MustDuration(c.ReconcileInterval) <= 0 {
			t.Fatalf("accepted durations %q and %q", c.StopTimeout, c.ReconcileInterval)
		}
		if MustSize(c.DefaultMemory) <= 0 || MustSize(c.DefaultDisk) <= 0 {
			t.Fatalf("accepted sizes %q and %q", c.DefaultMemory, c.DefaultDisk)
		}
		if c.DefaultCPUs < 1 {
			t.Fatalf("accepted default_cpus %d", c.DefaultCPUs)
		}
		if c.DNSGuestPort < 1 || c.DNSGuestPort > 65535 {
			t.Fatalf("accepted dns_guest_port %d, which is not a port", c.DNSGuestPort)
		}
		if !validInterfaceName(c.Bridge) {
			t.Fatalf("accepted bridge %q, which Linux refuses as an interface name", c.Bridge)
		}
		if len(l.Settings()) != len(Keys()) {
			t.Fatalf("Settings lists %d keys, want %d", len(l.Settings()), len(Keys()))
		}
	})
}

// validInterfaceName is the kernel's rule (dev_valid_name): 1-15 bytes,
// not "." or "..", no '/', ':' or white space.
func validInterfaceName(s string) bool {
	return s != "" && len(s) < 16 && s != "." && s != ".." && !strings.ContainsAny(s, "/: \t\n\v\f\r")
}
