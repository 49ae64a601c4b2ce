package nat

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"banger/internal/network"
	"banger/internal/system"
	"banger/internal/testutil"
)

// sideNetns starts a process in a new network namespace and returns a
// function that runs a command inside it. The process is killed at cleanup.
func sideNetns(t *testing.T) (pid int, in func(argv ...string) error) {
	t.Helper()
	cmd := exec.Command("unshare", "--net", "--", "sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid = cmd.Process.Pid
	ns := "--net=/proc/" + strconv.Itoa(pid) + "/ns/net"
	// Wait until unshare has switched namespaces (the link differs from ours).
	for i := 0; ; i++ {
		out, _ := exec.Command("readlink", "/proc/"+strconv.Itoa(pid)+"/ns/net", "/proc/self/ns/net").Output()
		if f := strings.Fields(string(out)); len(f) == 2 && f[0] != f[1] {
			break
		}
		if i > 100 {
			t.Fatal("side namespace did not appear")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return pid, func(argv ...string) error {
		out, err := exec.Command("nsenter", append([]string{ns, "--"}, argv...)...).CombinedOutput()
		if err != nil {
			return &system.CommandError{Argv: argv, Err: err, Stderr: string(out)}
		}
		return nil
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, argv ...string) {
	t.Helper()
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v: %s", argv, err, out)
	}
}

// testHostTraffic wires a "guest" namespace to the bridge and an "uplink"
// namespace that has no route back to the guest subnet, behind a FORWARD
// DROP policy, and checks that with the rules up the guest reaches the
// uplink (so it was masqueraded and forwarded) and its DNS queries to the
// gateway's port 53 reach the daemon's port, and that after Down it cannot.
func testHostTraffic(t *testing.T, b Backend) {
	testutil.RequireTool(t, "nsenter", "busybox", "sysctl", "iptables-"+string(b))
	ctx := context.Background()
	net0, err := network.New(network.Config{}, network.Deps{})
	must(t, err)
	must(t, net0.EnsureBridge(ctx))
	run(t, "iptables-"+string(b), "-P", "FORWARD", "DROP")

	guest, inGuest := sideNetns(t)
	uplink, inUplink := sideNetns(t)
	run(t, "ip", "link", "add", "vg0", "type", "veth", "peer", "name", "eth0", "netns", strconv.Itoa(guest))
	run(t, "ip", "link", "set", "vg0", "master", "banger0", "up")
	run(t, "ip", "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", strconv.Itoa(uplink))
	run(t, "ip", "addr", "add", "192.0.2.1/24", "dev", "up0")
	run(t, "ip", "link", "set", "up0", "up")
	for _, argv := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "addr", "add", "10.213.0.2/24", "dev", "eth0"},
		{"ip", "link", "set", "eth0", "up"},
		{"ip", "route", "add", "default", "via", "10.213.0.1"},
	} {
		must(t, inGuest(argv...))
	}
	for _, argv := range [][]string{
		{"ip", "addr", "add", "192.0.2.2/24", "dev", "eth0"},
		{"ip", "link", "set", "eth0", "up"},
	} {
		must(t, inUplink(argv...))
	}
	ping := func() error { return inGuest("busybox", "ping", "-c", "1", "-W", "1", "192.0.2.2") }

	if err := ping(); err == nil {
		t.Fatal("guest reached the uplink before NAT was up; the test proves nothing")
	}
	n, err := New(Config{Backend: b, DNSPort: 42053}, Deps{Runner: system.Privileged()})
	must(t, err)
	must(t, n.Up(ctx))
	if err := ping(); err != nil {
		t.Errorf("guest cannot reach the uplink with NAT up: %v", err)
	}

	// DNS over TCP to the gateway's port 53 lands on the daemon's port.
	ln, err := net.Listen("tcp", "10.213.0.1:42053")
	must(t, err)
	defer ln.Close()
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	// busybox nc connects, sends nothing (stdin is empty) and exits.
	if err := inGuest("busybox", "nc", "-w", "2", "10.213.0.1", "53"); err != nil {
		t.Errorf("guest cannot connect to the gateway's port 53: %v", err)
	}
	select {
	case err := <-accepted:
		must(t, err)
	case <-time.After(3 * time.Second):
		t.Error("connection to the gateway's port 53 did not reach the daemon's port")
	}

	// DNS over UDP: nslookup's query arrives at the daemon's port.
	pc, err := net.ListenPacket("udp", "10.213.0.1:42053")
	must(t, err)
	defer pc.Close()
	go func() { _ = inGuest("timeout", "3", "busybox", "nslookup", "dev.vm", "10.213.0.1") }()
	must(t, pc.SetReadDeadline(time.Now().Add(3*time.Second)))
	buf := make([]byte, 512)
	if _, from, err := pc.ReadFrom(buf); err != nil {
		t.Errorf("no UDP query from the guest reached the daemon's port: %v", err)
	} else if !strings.HasPrefix(from.String(), "10.213.0.2:") {
		t.Errorf("query came from %v, want the guest 10.213.0.2", from)
	}

	must(t, n.Down(ctx))
	if err := ping(); err == nil {
		t.Error("guest still reaches the uplink after Down")
	}
}

func TestHostTrafficNFT(t *testing.T) {
	if !testutil.InNetns(t) {
		return
	}
	testHostTraffic(t, NFT)
}

func TestHostTrafficLegacy(t *testing.T) {
	if !testutil.InNetns(t) {
		return
	}
	testHostTraffic(t, Legacy)
}
