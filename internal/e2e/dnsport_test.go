package e2e

import (
	"net"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// defaultDNSListen is the loopback DNS address a user's bangerd takes when
// dns_listen is not configured.
const defaultDNSListen = "127.0.0.1:42069"

// The tests must pass while the developer's own bangerd serves the default
// DNS port: this test starts such a daemon and, beside it, one the way
// every other test does.
func TestTestDaemonsRunBesideOneOnTheDefaultDNSPort(t *testing.T) {
	requireFree(t, defaultDNSListen)
	user := newEnv(t)
	user.vars = append(user.vars, "BANGER_DNS_LISTEN="+defaultDNSListen)
	user.must("daemon", "start")
	if got := user.dnsAddr(); got != defaultDNSListen {
		t.Fatalf("the user's daemon listens on %s, want %s", got, defaultDNSListen)
	}
	userPID := user.status().PID

	iso := newEnv(t)
	if out := iso.must("daemon", "status"); !strings.Contains(out, "listeners") {
		t.Errorf("daemon status output = %q", out)
	}
	if out := iso.must("vm", "list"); !strings.HasPrefix(out, "NAME") {
		t.Errorf("vm list output = %q", out)
	}
	addr := iso.dnsAddr()
	if addr == defaultDNSListen {
		t.Fatalf("the test daemon reports the default DNS address %s", addr)
	}
	// The reported address is the bound one: the daemon answers there.
	for _, a := range []string{addr, defaultDNSListen} {
		if rcode := query(t, a, "nope.vm."); rcode != mdns.RcodeNameError {
			t.Errorf("nope.vm at %s: rcode %s, want NXDOMAIN", a, mdns.RcodeToString[rcode])
		}
	}
	if st := user.status(); st.PID != userPID {
		t.Errorf("the user's daemon changed from pid %d to %d", userPID, st.PID)
	}
}

// requireFree skips the test when another program holds addr.
func requireFree(t *testing.T, addr string) {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Skipf("needs %s free to start a daemon there, but it is taken (%v)", addr, err)
	}
	pc.Close()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("needs %s free to start a daemon there, but it is taken (%v)", addr, err)
	}
	l.Close()
}

// query asks the DNS server at addr for name's A record and returns the
// answer's rcode.
func query(t *testing.T, addr, name string) int {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, mdns.TypeA)
	c := &mdns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("querying %s at %s: %v", name, addr, err)
	}
	return r.Rcode
}
