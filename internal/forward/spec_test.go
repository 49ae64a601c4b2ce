package forward

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestParseSpec(t *testing.T) {
	for in, want := range map[string]string{
		"8080:80":                "127.0.0.1:8080:80/tcp",
		"8080:80/tcp":            "127.0.0.1:8080:80/tcp",
		"5353:53/udp":            "127.0.0.1:5353:53/udp",
		"5353:53/UDP":            "127.0.0.1:5353:53/udp",
		"0.0.0.0:8080:80":        "0.0.0.0:8080:80/tcp",
		"10.0.0.5:1:65535":       "10.0.0.5:1:65535/tcp",
		"localhost:3000:3000":    "127.0.0.1:3000:3000/tcp",
		"[::1]:8080:80":          "[::1]:8080:80/tcp",
		"[::]:53:53/udp":         "[::]:53:53/udp",
		"[::ffff:127.0.0.1]:1:2": "127.0.0.1:1:2/tcp",
	} {
		s, err := ParseSpec(in)
		if err != nil {
			t.Errorf("ParseSpec(%q): %v", in, err)
			continue
		}
		if s.String() != want {
			t.Errorf("ParseSpec(%q) = %s, want %s", in, s, want)
		}
		if back, err := ParseSpec(s.String()); err != nil || back != s {
			t.Errorf("%s does not parse back: %v %v", s, back, err)
		}
	}
	for in, want := range map[string]string{
		"80":              "a host port and a guest port",
		"1:2:3:4":         "brackets",
		"::1:8080:80":     "brackets",
		"0:80":            "host port",
		"8080:0":          "guest port",
		"8080:65536":      "guest port",
		"8080:http":       "guest port",
		"-1:80":           "host port",
		"8080:80/sctp":    "unknown protocol",
		"example.com:1:2": "not an IP address",
		"[::1]8080:80":    "brackets",
		"":                "a host port and a guest port",
	} {
		_, err := ParseSpec(in)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "HOSTPORT:GUESTPORT") {
			t.Errorf("ParseSpec(%q) = %v, want an error about %q with the syntax", in, err, want)
		}
	}
	if err := (Spec{HostPort: 1, GuestPort: 1, Proto: TCP}).Validate(); err == nil {
		t.Error("a spec without an address is valid")
	}
	if err := (Spec{HostAddr: netip.MustParseAddr("127.0.0.1"), HostPort: 1, GuestPort: 1, Proto: "x"}).Validate(); err == nil {
		t.Error("a spec with protocol x is valid")
	}
}

func opErr(errno syscall.Errno) error {
	return &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", errno)}
}

func TestBindErrorsSayWhatToDo(t *testing.T) {
	web, _ := ParseSpec("80:80")
	high, _ := ParseSpec("8080:80")
	far, _ := ParseSpec("192.0.2.1:8080:80")
	for _, tc := range []struct {
		spec Spec
		err  error
		want []string
	}{
		{high, opErr(syscall.EADDRINUSE), []string{"TCP port 8080 is already in use on 127.0.0.1", "8081:80"}},
		{web, opErr(syscall.EACCES), []string{"host port 80 is privileged", "below 1024", "8080:80", "sysctl -w net.ipv4.ip_unprivileged_port_start=80"}},
		{far, opErr(syscall.EADDRNOTAVAIL), []string{"192.0.2.1 is not an address of this host"}},
		{high, errors.New("odd"), []string{"forwarding 127.0.0.1:8080:80/tcp: odd"}},
	} {
		got := bindError(tc.spec, tc.err, 1024).Error()
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("bindError(%s, %v) = %q, missing %q", tc.spec, tc.err, got, w)
			}
		}
	}
	// EACCES on a port the limit allows is not about privilege.
	if got := bindError(web, opErr(syscall.EACCES), 80).Error(); strings.Contains(got, "privileged") {
		t.Errorf("with the limit at 80: %q", got)
	}
}

// TestPrivilegedPortAsOrdinaryUser binds a privileged port for real; it
// runs only as an ordinary user, on a host with the default limit.
func TestPrivilegedPortAsOrdinaryUser(t *testing.T) {
	if os.Getuid() == 0 {
		t.Skip("runs only as an ordinary user (root may bind any port)")
	}
	if readUnprivilegedPortStart() <= 1 {
		t.Skip("net.ipv4.ip_unprivileged_port_start allows every port here")
	}
	f := New(netip.MustParseAddr("127.0.0.1"), Options{})
	defer f.Close()
	err := f.Start(Spec{HostAddr: netip.MustParseAddr("127.0.0.1"), HostPort: 1, GuestPort: 80, Proto: TCP})
	if err == nil || !strings.Contains(err.Error(), "privileged") {
		t.Errorf("binding port 1: %v", err)
	}
	t.Log(err)
}
