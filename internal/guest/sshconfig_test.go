package guest

import (
	"bytes"
	"flag"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

func sampleHosts() []SSHHost {
	return []SSHHost{
		{Name: "web", DNSName: "web.vm", Addr: netip.MustParseAddr("10.213.0.3")},
		{Name: "dev", DNSName: "dev.vm", Addr: netip.MustParseAddr("10.213.0.2")},
		{Name: "booting", DNSName: "booting.vm"},
	}
}

const (
	testKey        = "/home/ann/.local/share/banger/ssh/id_ed25519"
	testKnownHosts = "/home/ann/My Data/100%/known_hosts"
)

func TestRenderSSHConfigGolden(t *testing.T) {
	got, err := RenderSSHConfig(sampleHosts(), testKey, testKnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "ssh_config.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run SSHConfig -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("ssh config (-golden +got):\n%s", diff)
	}
}

// TestRenderedConfigAsOpenSSHReadsIt asks the OpenSSH client what it makes
// of the rendered file (ssh -G prints the options it would use).
func TestRenderedConfigAsOpenSSHReadsIt(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("the OpenSSH client is not installed")
	}
	data, err := RenderSSHConfig(sampleHosts(), testKey, testKnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "config")
	os.WriteFile(cfg, data, 0o600)
	for _, alias := range []string{"dev.vm"} {
		out, err := exec.Command("ssh", "-G", "-F", cfg, alias).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh -G %s: %v\n%s", alias, err, out)
		}
		got := map[string]string{}
		for _, line := range strings.Split(string(out), "\n") {
			k, v, _ := strings.Cut(line, " ")
			got[k] = v
		}
		for k, want := range map[string]string{
			"hostname": "10.213.0.2", "user": "root", "identityfile": testKey, "identitiesonly": "yes",
			"userknownhostsfile": testKnownHosts, "stricthostkeychecking": "true", "hostkeyalias": "dev.vm",
			"globalknownhostsfile": "/dev/null",
		} {
			if got[k] != want {
				t.Errorf("ssh -G %s: %s = %q, want %q", alias, k, got[k], want)
			}
		}
	}
}

func TestRenderSSHConfigRefusesWhatSSHCannotExpress(t *testing.T) {
	for _, tc := range []struct {
		hosts    []SSHHost
		key, kh  string
		wantText string
	}{
		{nil, "relative/key", testKnownHosts, "not an absolute path"},
		{nil, testKey, "/a\"b", "quote"},
		{[]SSHHost{{Name: "a*", DNSName: "a.vm", Addr: netip.MustParseAddr("10.0.0.1")}}, testKey, testKnownHosts, "Host pattern"},
		{[]SSHHost{{Name: "a", DNSName: "", Addr: netip.MustParseAddr("10.0.0.1")}}, testKey, testKnownHosts, "Host pattern"},
	} {
		if _, err := RenderSSHConfig(tc.hosts, tc.key, tc.kh); err == nil || !strings.Contains(err.Error(), tc.wantText) {
			t.Errorf("%+v: err %v, want %q", tc, err, tc.wantText)
		}
	}
}

func TestAddInclude(t *testing.T) {
	const inc = "/home/ann/.config/banger/ssh_config"
	user := []byte("Host github.com\n\tUser git\n")
	got, added, err := AddInclude(user, inc)
	if err != nil || !added {
		t.Fatalf("AddInclude = %v, %v", added, err)
	}
	want := "# Added by `banger ssh-config --install`: banger's VMs by name.\nInclude " + inc + "\n\nHost github.com\n\tUser git\n"
	if string(got) != want {
		t.Errorf("config:\n%s\nwant:\n%s", got, want)
	}
	// Idempotent, whatever the spelling of the existing line.
	for _, existing := range []string{string(got), "include " + inc + "\n", "  Include=" + inc + "\n", "Include ~/.ssh/other " + inc + "\n"} {
		if out, added, err := AddInclude([]byte(existing), inc); err != nil || added || !bytes.Equal(out, []byte(existing)) {
			t.Errorf("with %q: added %v, %v", existing, added, err)
		}
	}
	spaced := "/home/ann/My Config/ssh_config"
	once, _, _ := AddInclude(nil, spaced)
	if !strings.Contains(string(once), `Include "`+spaced+`"`) {
		t.Errorf("a path with a space is not quoted: %s", once)
	}
	if _, added, _ := AddInclude(once, spaced); added {
		t.Error("a quoted Include line was not recognised")
	}
	if _, _, err := AddInclude(nil, "/a/*/b"); err == nil {
		t.Error("a glob in the Include path was accepted")
	}
}

// TestOpenSSHConnectsWithTheRenderedConfig runs the real OpenSSH client
// with the rendered config against the fake guest: banger's key logs in,
// and the host key pinned under the DNS name passes strict checking with
// no prompt.
func TestOpenSSHConnectsWithTheRenderedConfig(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("the OpenSSH client is not installed")
	}
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "id_ed25519")
	user, err := EnsureUserKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	host, err := NewHostKey("root@dev")
	if err != nil {
		t.Fatal(err)
	}
	g := newFakeGuest(t, host, user.Signer.PublicKey())
	kh := NewKnownHosts(filepath.Join(dir, "known_hosts"))
	if err := kh.Pin(HostNames("dev", "vm", netip.MustParseAddr("127.0.0.1")), host.Public); err != nil {
		t.Fatal(err)
	}
	data, err := RenderSSHConfig([]SSHHost{{Name: "dev", DNSName: "dev.vm", Addr: netip.MustParseAddr("127.0.0.1")}}, keyPath, kh.Path())
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config")
	os.WriteFile(cfg, data, 0o600)
	_, port, _ := strings.Cut(g.addr(), ":")
	for _, alias := range []string{"dev.vm"} {
		out, err := exec.Command("ssh", "-F", cfg, "-p", port, "-o", "BatchMode=yes", alias, "echo hello").CombinedOutput()
		if err != nil || string(out) != "hello\n" {
			t.Errorf("ssh %s: %v, output %q", alias, err, out)
		}
	}
	// Another host key under the same name is refused.
	other, _ := NewHostKey("root@other")
	if err := kh.Pin([]string{"dev.vm"}, other.Public); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ssh", "-F", cfg, "-p", port, "-o", "BatchMode=yes", "dev.vm", "echo hello").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "HOST IDENTIFICATION HAS CHANGED") {
		t.Errorf("with another key pinned: %v, %q; want a refusal", err, out)
	}
}
