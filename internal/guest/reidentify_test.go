package guest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
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

// testIdentity is a complete identity for the tests.
func testIdentity() Identity {
	return Identity{
		Hostname: "c1", Domain: "vm", Address: netip.MustParsePrefix("10.213.0.9/24"), Gateway: netip.MustParseAddr("10.213.0.1"),
		MAC: "02:00:00:00:00:09", MachineID: strings.Repeat("ab", 16), Entropy: []byte{1, 2, 3},
		HostKey: HostKey{PrivatePEM: []byte("-----BEGIN KEY-----\nPRIVATE\n-----END KEY-----\n"), AuthorizedKey: []byte("ssh-ed25519 AAAA\n")},
	}
}

// TestIdentityAgent runs the identity agent as a template's guest would
// (with the host's perl, saying what it would do instead of doing it, on
// loopback) and talks to it as the daemon does: a peer without the token
// is denied and the agent waits on; the daemon's identity is taken whole,
// answered with ok, and the agent is gone afterwards.
func TestIdentityAgent(t *testing.T) {
	if _, err := exec.LookPath("perl"); err != nil {
		t.Skip("no perl on this host")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	host, port, _ := net.SplitHostPort(addr)
	token, err := NewAgentToken()
	if err != nil {
		t.Fatal(err)
	}
	req := ArmAgentRequest(netip.MustParseAddr(host))
	argv := slices.Clone(req.Argv)
	argv[len(argv)-1] = port // the test's free port, not AgentPort
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "BANGER_REIDENTIFY_DRY=1")
	cmd.Stdin = strings.NewReader(token + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("arming the agent: %v\n%s", err, out)
	}
	var pid int
	if _, err := fmt.Sscanf(string(out), "banger-reidentify: waiting for an identity on "+addr+" (pid %d)", &pid); err != nil || pid <= 0 {
		t.Fatalf("the agent said %q, want where it waits and its pid", out)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	give := func(token string) (string, error) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dialling the agent: %v", err)
		}
		defer conn.Close()
		return GiveIdentity(ctx, conn, token, testIdentity(), func() time.Time { return time.Unix(1795840244, 5) })
	}
	wrong, _ := NewAgentToken()
	if said, err := give(wrong); err == nil || !strings.Contains(err.Error(), "denied") {
		t.Errorf("identity with a wrong token: %q, %v; want it denied", said, err)
	}
	said, err := give(token)
	if err != nil {
		t.Fatalf("identity with the token: %v (said %q)", err, said)
	}
	for _, want := range []string{
		"would set the clock to 1795840244.000000005",
		"would credit 3 bytes of entropy",
		"would write /etc/ssh/ssh_host_ed25519_key (0600, 46 bytes)",
		"would write /etc/machine-id (0444, 33 bytes)",
		"banger-reidentify: c1 takes 10.213.0.9/24 (02:00:00:00:00:09)",
	} {
		if !strings.Contains(said, want) {
			t.Errorf("the agent said %q, want %q in it", said, want)
		}
	}
	// Done, the agent leaves.
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Error("the agent still listens after it gave an identity")
	}
}
