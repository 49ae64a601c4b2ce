package guest

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func hostKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	hk, err := NewHostKey("")
	if err != nil {
		t.Fatal(err)
	}
	return hk.Public
}

func check(t *testing.T, kh *KnownHosts, host string, key ssh.PublicKey) error {
	t.Helper()
	cb, err := kh.Callback()
	if err != nil {
		t.Fatal(err)
	}
	h, _, _ := net.SplitHostPort(host)
	ip := net.ParseIP(h)
	if ip == nil {
		ip = net.IPv4(192, 0, 2, 1) // the name resolves elsewhere; only the name must match
	}
	return cb(host, &net.TCPAddr{IP: ip, Port: 22}, key)
}

func TestHostNames(t *testing.T) {
	got := HostNames("dev", "vm", netip.MustParseAddr("10.77.0.5"))
	if diff := cmp.Diff([]string{"dev.vm", "10.77.0.5"}, got); diff != "" {
		t.Error(diff)
	}
}

func TestPinReplacesAndUnpinRemoves(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "known_hosts")
	kh := NewKnownHosts(path)
	// Lines banger did not write survive every update.
	os.MkdirAll(filepath.Dir(path), 0o700)
	foreign := "# kept comment\nother.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
	os.WriteFile(path, []byte(foreign), 0o600)

	old, newer, third := hostKey(t), hostKey(t), hostKey(t)
	dev := HostNames("dev", "vm", netip.MustParseAddr("10.77.0.5"))
	if err := kh.Pin(dev, old); err != nil {
		t.Fatal(err)
	}
	if err := kh.Pin(HostNames("web", "vm", netip.MustParseAddr("10.77.0.6")), third); err != nil {
		t.Fatal(err)
	}
	// Re-creating dev pins a new key; the old one must be gone, not merely shadowed.
	if err := kh.Pin(dev, newer); err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"dev.vm:22", "10.77.0.5:22"} {
		if err := check(t, kh, host, newer); err != nil {
			t.Errorf("%s with new key: %v", host, err)
		}
		var ke *knownhosts.KeyError
		if err := check(t, kh, host, old); !errors.As(err, &ke) || len(ke.Want) == 0 {
			t.Errorf("%s with old key: err = %v, want key mismatch", host, err)
		}
	}
	if err := check(t, kh, "web.vm:22", third); err != nil {
		t.Errorf("web.vm lost its key: %v", err)
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), foreign) || strings.Count(string(data), "dev.vm") != 1 {
		t.Errorf("known_hosts =\n%s", data)
	}
	if fi, _ := os.Stat(path); fi.Mode() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode())
	}

	if err := kh.Unpin(dev); err != nil {
		t.Fatal(err)
	}
	var ke *knownhosts.KeyError
	if err := check(t, kh, "dev.vm:22", newer); !errors.As(err, &ke) || len(ke.Want) != 0 {
		t.Errorf("after unpin: err = %v, want unknown host", err)
	}
	if err := kh.Unpin(dev); err != nil {
		t.Errorf("second unpin: %v", err)
	}
}

func TestPinDropsEntryOfReusedAddress(t *testing.T) {
	kh := NewKnownHosts(filepath.Join(t.TempDir(), "known_hosts"))
	addr := netip.MustParseAddr("10.77.0.9")
	if err := kh.Pin(HostNames("gone", "vm", addr), hostKey(t)); err != nil {
		t.Fatal(err)
	}
	k := hostKey(t)
	if err := kh.Pin(HostNames("new", "vm", addr), k); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(kh.Path())
	if strings.Contains(string(data), "gone.vm") {
		t.Errorf("stale entry for the reused address kept:\n%s", data)
	}
	if err := check(t, kh, "10.77.0.9:22", k); err != nil {
		t.Error(err)
	}
}

func TestDropNamesKeepsMarkersAndNonMatching(t *testing.T) {
	in := "@cert-authority *.vm ssh-ed25519 AAAA\n@revoked dev.vm ssh-ed25519 BBBB\n[dev.vm]:2222 ssh-ed25519 CCCC\ndev.vm,10.0.0.1 ssh-ed25519 DDDD\nlast ssh-ed25519 EEEE"
	got := string(dropNames([]byte(in), []string{"dev.vm:22"}))
	want := "@cert-authority *.vm ssh-ed25519 AAAA\n[dev.vm]:2222 ssh-ed25519 CCCC\nlast ssh-ed25519 EEEE\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Error(diff)
	}
}
