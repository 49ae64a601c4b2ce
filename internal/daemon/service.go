package daemon

import (
	"os"
	"strings"
)

// ownUnit is the systemd unit whose cgroup the daemon runs in, when
// systemd started it as a service (INVOCATION_ID is set for services).
func ownUnit() string {
	if os.Getenv("INVOCATION_ID") == "" {
		return ""
	}
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	return UnitFromCgroup(string(data))
}

// UnitFromCgroup returns the service unit named last in a /proc/PID/cgroup
// path ("0::/user.slice/user-1000.slice/user@1000.service/app.slice/bangerd.service"
// gives "bangerd.service"), or "" when the process is in no service's
// cgroup of its own.
func UnitFromCgroup(cgroup string) string {
	for _, line := range strings.Split(strings.TrimSpace(cgroup), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || parts[0] != "0" {
			continue
		}
		segs := strings.Split(strings.TrimRight(parts[2], "/"), "/")
		last := segs[len(segs)-1]
		if strings.HasSuffix(last, ".service") && !strings.HasPrefix(last, "user@") {
			return last
		}
	}
	return ""
}
