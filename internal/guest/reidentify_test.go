package guest

import (
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestReidentifyProgramCompiles: the re-identification program loads no
// module for speed, so strict and warnings are checked here instead,
// with the host's perl.
func TestReidentifyProgramCompiles(t *testing.T) {
	if _, err := exec.LookPath("perl"); err != nil {
		t.Skip("no perl on this host")
	}
	cmd := exec.Command("perl", "-Mstrict", "-Mwarnings", "-c", "-e", reidentifyProgram)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "-e syntax OK" {
		t.Fatalf("perl -c of reidentify.pl: %v\n%s", err, out)
	}
	if _, err := exec.LookPath("sh"); err == nil {
		if out, err := exec.Command("sh", "-n", "-c", reidentifyScript).CombinedOutput(); err != nil {
			t.Fatalf("sh -n of reidentify.sh: %v\n%s", err, out)
		}
	}
}

// TestReidentifyRequest: the request carries every part of the identity
// in the order the program reads them, the time with nanoseconds, and the
// private key only on stdin; an incomplete identity is refused.
func TestReidentifyRequest(t *testing.T) {
	id := Identity{
		Hostname: "c1", Domain: "vm", Address: netip.MustParsePrefix("10.213.0.9/24"), Gateway: netip.MustParseAddr("10.213.0.1"),
		MAC: "02:00:00:00:00:09", MachineID: strings.Repeat("ab", 16), Entropy: []byte{1, 2, 3},
		HostKey: HostKey{PrivatePEM: []byte("PRIVATE"), AuthorizedKey: []byte("ssh-ed25519 AAAA\n")},
		Time:    time.Unix(1795840244, 5),
	}
	req, stdin, err := ReidentifyRequest(id)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"c1", "vm", "10.213.0.9/24", "10.213.0.1", "02:00:00:00:00:09", strings.Repeat("ab", 16), "010203", "ssh-ed25519 AAAA", "1795840244.000000005"}
	if len(req.Argv) < len(want) || !slices.Equal(req.Argv[len(req.Argv)-len(want):], want) {
		t.Errorf("argv ends %q, want %q", req.Argv[max(0, len(req.Argv)-len(want)):], want)
	}
	if string(stdin) != "PRIVATE" || slices.ContainsFunc(req.Argv, func(a string) bool { return strings.Contains(a, "PRIVATE") }) {
		t.Errorf("the private key must travel on stdin only: stdin %q, argv %q", stdin, req.Argv)
	}
	for _, drop := range []func(*Identity){
		func(i *Identity) { i.Time = time.Time{} },
		func(i *Identity) { i.Entropy = nil },
		func(i *Identity) { i.HostKey.PrivatePEM = nil },
		func(i *Identity) { i.Gateway = netip.Addr{} },
	} {
		bad := id
		drop(&bad)
		if _, _, err := ReidentifyRequest(bad); err == nil {
			t.Errorf("incomplete identity %+v accepted", bad)
		}
	}
}
