package bootstrap

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"banger/internal/system"
)

// procInfo is what reapTreeProcesses needs to know about a process.
type procInfo struct {
	PID, PPID int
	StartTime uint64
	Cmdline   string
	Root      string
}

// treeProcesses picks, from a process table, the processes of an
// interrupted bootstrap: descendants of self whose command line names tree
// or whose root directory lies in it (or that descend from such a process),
// and any process chrooted into tree, since tree is a fresh directory of
// this build and a process chrooted there was started by it even after it
// was orphaned. Killing mmdebstrap alone would leave apt, dpkg and
// maintainer scripts running in the tree and holding its output pipes.
func treeProcesses(procs []procInfo, self int, tree string) []procInfo {
	byPID := map[int]procInfo{}
	for _, p := range procs {
		byPID[p.PID] = p
	}
	uses := func(p procInfo) bool {
		return strings.Contains(p.Cmdline, tree) || p.Root == tree || strings.HasPrefix(p.Root, tree+"/")
	}
	var out []procInfo
	for _, p := range procs {
		if p.PID == self {
			continue
		}
		marked, mine := false, false
		for q, depth := p, 0; depth < 64; depth++ {
			if q.PID != self && uses(q) {
				marked = true
			}
			if q.PPID == self {
				mine = true
				break
			}
			parent, ok := byPID[q.PPID]
			if !ok {
				break
			}
			q = parent
		}
		if (mine && marked) || p.Root == tree || strings.HasPrefix(p.Root, tree+"/") {
			out = append(out, p)
		}
	}
	return out
}

// readProcs reads the process table, with each process's root directory.
func readProcs() []procInfo {
	var out []procInfo
	for _, p := range system.Processes() {
		root, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(p.PID), "root"))
		out = append(out, procInfo{PID: p.PID, PPID: p.PPID, StartTime: p.StartTime, Cmdline: strings.Join(p.Args, " "), Root: root})
	}
	return out
}

// reapTreeProcesses kills the processes of an interrupted bootstrap, in
// passes until none is left (a process may fork while the first pass runs).
func reapTreeProcesses(log *slog.Logger, tree string) {
	for pass := 0; pass < 20; pass++ {
		procs := treeProcesses(readProcs(), os.Getpid(), tree)
		if len(procs) == 0 {
			return
		}
		for _, p := range procs {
			if err := system.Signal(p.PID, p.StartTime, syscall.SIGKILL); err == nil {
				log.Info("stopped process of the interrupted bootstrap", "pid", p.PID, "cmd", p.Cmdline)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}
