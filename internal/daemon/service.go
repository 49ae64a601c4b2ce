package daemon

import (
	"os"
	"strings"
)

// serviceUnit is the systemd user unit the package installs for bangerd.
const serviceUnit = "bangerd.service"

// ownUnit is "bangerd.service" when systemd started this daemon as that
// service (INVOCATION_ID is set for services, and the process sits in the
// unit's cgroup), else "". A bangerd that merely inherited another
// service's cgroup and environment reports none, so the CLI never
// restarts some other unit.
func ownUnit() string {
	if os.Getenv("INVOCATION_ID") == "" {
		return ""
	}
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	if UnitFromCgroup(string(data)) != serviceUnit {
		return ""
	}
	return serviceUnit
}

// UnitFromCgroup returns the service unit named last in the systemd
// hierarchy of a /proc/PID/cgroup ("0::/user.slice/user-1000.slice/user@1000.service/app.slice/bangerd.service"
// on cgroup v2, the "name=systemd" line on v1, give "bangerd.service"),
// or "" when the process is in no service's cgroup of its own.
func UnitFromCgroup(cgroup string) string {
	for _, line := range strings.Split(strings.TrimSpace(cgroup), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || !(parts[0] == "0" && parts[1] == "" || parts[1] == "name=systemd") {
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
