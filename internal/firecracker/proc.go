package firecracker

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"banger/internal/system"
)

// servesSocket reports whether a VMM command line names socket as its API
// socket.
func servesSocket(args []string, socket string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--api-sock" && args[i+1] == socket {
			return true
		}
	}
	return false
}

// cmdline reads /proc/PID/cmdline as an argv.
func cmdline(pid int) ([]string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil, fmt.Errorf("reading command line of pid %d: %w", pid, err)
	}
	data = bytes.TrimRight(data, "\x00")
	if len(data) == 0 {
		return nil, nil
	}
	var args []string
	for _, a := range bytes.Split(data, []byte{0}) {
		args = append(args, string(a))
	}
	return args, nil
}

// ServingSockets maps the API socket of every running VMM (any process
// whose command line has `--api-sock PATH`, other than a sudo an older
// banger put above its VMM) to its identity. Reconcile uses it to find
// VMMs whose start never completed from the daemon's point of view, such
// as after a kill -9 mid-start.
func ServingSockets() map[string]Process {
	out := map[string]Process{}
	for _, p := range system.Processes() {
		if len(p.Args) == 0 || filepath.Base(p.Args[0]) == "sudo" || p.State == 'Z' {
			continue
		}
		for i := 0; i+1 < len(p.Args); i++ {
			if p.Args[i] == "--api-sock" {
				out[p.Args[i+1]] = Process{PID: p.PID, StartTime: p.StartTime, Socket: p.Args[i+1]}
				break
			}
		}
	}
	return out
}
