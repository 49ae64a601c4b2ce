package forward

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
)

// unprivilegedPortStartFile holds the lowest port any user may bind.
const unprivilegedPortStartFile = "/proc/sys/net/ipv4/ip_unprivileged_port_start"

// readUnprivilegedPortStart reads net.ipv4.ip_unprivileged_port_start;
// 1024, the kernel's default, when it cannot be read.
func readUnprivilegedPortStart() int {
	data, err := os.ReadFile(unprivilegedPortStartFile)
	if err != nil {
		return 1024
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 1024
	}
	return n
}

// bindError explains why listening for spec failed: a port in use, a
// privileged port for an ordinary user (unprivStart is
// net.ipv4.ip_unprivileged_port_start), an address the host does not have.
func bindError(spec Spec, err error, unprivStart int) error {
	what := fmt.Sprintf("forwarding %s", spec)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("%s: %s port %d is already in use on %s (another program or forward listens there); choose another host port, e.g. %d:%d",
			what, strings.ToUpper(string(spec.Proto)), spec.HostPort, spec.HostAddr, suggestPort(spec.HostPort), spec.GuestPort)
	case errors.Is(err, syscall.EACCES) && int(spec.HostPort) < unprivStart:
		return fmt.Errorf("%s: host port %d is privileged: ports below %d need root (net.ipv4.ip_unprivileged_port_start=%d) and bangerd runs as %s; use a host port of %d or above, e.g. %d:%d, or lower the limit with `sudo sysctl -w net.ipv4.ip_unprivileged_port_start=%d` (keep it in /etc/sysctl.d/ to survive reboots)",
			what, spec.HostPort, unprivStart, unprivStart, userName(), unprivStart, suggestPort(spec.HostPort), spec.GuestPort, spec.HostPort)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Errorf("%s: %s is not an address of this host; use 127.0.0.1 (the default), 0.0.0.0 for every interface, or one of `ip -brief address`", what, spec.HostAddr)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// suggestPort proposes an unprivileged port for an example: 8080 for 80,
// 8443 for 443, 10000+p otherwise, p+1 for ports already unprivileged.
func suggestPort(p uint16) int {
	switch {
	case p == 80:
		return 8080
	case p == 443:
		return 8443
	case p < 1024:
		return 10000 + int(p)
	case p < 65535:
		return int(p) + 1
	}
	return 49152
}

func userName() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "uid " + strconv.Itoa(os.Getuid())
}
