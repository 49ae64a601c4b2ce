package hostsetup

import (
	"os"
	"strconv"
	"syscall"

	"banger/internal/system"
)

// Process is one process as teardown sees it: who runs it, what it is and
// in which network namespace.
type Process struct {
	PID       int
	StartTime uint64
	UID       int
	Comm      string
	// NetNS is the inode of the process's network namespace.
	NetNS uint64
}

// ListProcesses reads the host's processes from /proc. Processes that exit
// while it reads are left out.
func ListProcesses() ([]Process, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []Process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir, err := os.Stat("/proc/" + e.Name())
		if err != nil {
			continue
		}
		st, err := system.ReadProcStat(pid)
		if err != nil {
			continue
		}
		p := Process{PID: pid, StartTime: st.StartTime, UID: int(dir.Sys().(*syscall.Stat_t).Uid), Comm: st.Comm}
		if ns, err := os.Stat("/proc/" + e.Name() + "/ns/net"); err == nil {
			p.NetNS = ns.Sys().(*syscall.Stat_t).Ino
		}
		out = append(out, p)
	}
	return out, nil
}

// ownNetNS is the inode of the calling process's network namespace.
func ownNetNS() uint64 {
	st, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		return 0
	}
	return st.Sys().(*syscall.Stat_t).Ino
}
