package allocation

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// procNetFiles are the kernel's socket tables read by ListeningPorts.
var procNetFiles = []string{"/proc/net/tcp", "/proc/net/tcp6", "/proc/net/udp", "/proc/net/udp6"}

// ListeningPorts returns the local ports of the host's TCP listeners and
// UDP sockets, read from /proc/net. A missing table (no IPv6) is skipped.
func ListeningPorts() ([]int, error) {
	var out []int
	for _, f := range procNetFiles {
		data, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", f, err)
		}
		ports, err := ParseProcNet(data, strings.HasPrefix(f, "/proc/net/tcp"))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", f, err)
		}
		out = append(out, ports...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// ParseProcNet reads the local ports from a /proc/net/{tcp,udp}[6] table:
// for TCP only sockets in state LISTEN (0A), for UDP all of them.
func ParseProcNet(data []byte, tcp bool) ([]int, error) {
	var out []int
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 0; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if n == 0 || len(f) == 0 {
			continue // header
		}
		if len(f) < 4 {
			return nil, fmt.Errorf("line %d: %d fields, want at least 4", n+1, len(f))
		}
		if tcp && f[3] != "0A" {
			continue
		}
		_, port, ok := strings.Cut(f[1], ":")
		if !ok {
			return nil, fmt.Errorf("line %d: local address %q has no port", n+1, f[1])
		}
		p, err := strconv.ParseUint(port, 16, 16)
		if err != nil {
			return nil, fmt.Errorf("line %d: port %q: %w", n+1, port, err)
		}
		out = append(out, int(p))
	}
	return out, sc.Err()
}
