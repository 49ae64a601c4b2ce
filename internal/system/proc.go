package system

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ProcStat holds the fields of /proc/PID/stat that banger uses.
type ProcStat struct {
	PID   int
	Comm  string
	State byte
	PPID  int
	// UTime and STime are CPU time in clock ticks (see ClockTicks).
	UTime, STime uint64
	// StartTime is the process start in clock ticks since boot. Together with
	// the pid it identifies a process across pid reuse.
	StartTime uint64
	// RSSPages is the resident set size in pages.
	RSSPages int64
}

// ClockTicks is USER_HZ, the unit of the /proc/PID/stat times. It is 100 on
// every Linux architecture banger supports.
const ClockTicks = 100

// ParseProcStat parses the contents of /proc/PID/stat. The command name may
// contain spaces and parentheses, so it is located by the last ')'.
func ParseProcStat(data []byte) (ProcStat, error) {
	var st ProcStat
	s := string(bytes.TrimSpace(data))
	open := strings.IndexByte(s, '(')
	close := strings.LastIndexByte(s, ')')
	if open < 0 || close < open {
		return st, fmt.Errorf("parsing /proc stat %q: no command name", truncate(s, 80))
	}
	pid, err := strconv.Atoi(strings.TrimSpace(s[:open]))
	if err != nil {
		return st, fmt.Errorf("parsing /proc stat pid: %w", err)
	}
	st.PID = pid
	st.Comm = s[open+1 : close]
	f := strings.Fields(s[close+1:])
	// f[0] is field 3 (state); field N is f[N-3].
	if len(f) < 22 {
		return st, fmt.Errorf("parsing /proc stat for pid %d: %d fields, want at least 24", pid, len(f)+2)
	}
	st.State = f[0][0]
	num := func(field int) uint64 {
		if err != nil {
			return 0
		}
		var v uint64
		v, err = strconv.ParseUint(f[field-3], 10, 64)
		return v
	}
	st.PPID = int(num(4))
	st.UTime = num(14)
	st.STime = num(15)
	st.StartTime = num(22)
	rss, rerr := strconv.ParseInt(f[24-3], 10, 64)
	if err != nil || rerr != nil {
		return st, fmt.Errorf("parsing /proc stat numbers for pid %d: %w", pid, errors.Join(err, rerr))
	}
	st.RSSPages = rss
	return st, nil
}

// ReadProcStat reads and parses /proc/PID/stat.
func ReadProcStat(pid int) (ProcStat, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcStat{}, fmt.Errorf("reading stat of pid %d: %w", pid, err)
	}
	return ParseProcStat(data)
}

// ProcessAlive reports whether pid is running and is the same process that
// was recorded with startTime (not a later process that reused the pid).
// A zombie counts as gone. A zero startTime matches any process with the pid.
func ProcessAlive(pid int, startTime uint64) bool {
	if pid <= 0 {
		return false
	}
	st, err := ReadProcStat(pid)
	if err != nil {
		return false
	}
	if st.State == 'Z' || st.State == 'X' {
		return false
	}
	return startTime == 0 || st.StartTime == startTime
}

// ParseStatusKB returns a "Key:   N kB" field of /proc/PID/status in bytes.
func ParseStatusKB(data []byte, key string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != key {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			break
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parsing %s in /proc status: %w", key, err)
		}
		if len(fields) > 1 && fields[1] == "kB" {
			n *= 1024
		}
		return n, nil
	}
	return 0, fmt.Errorf("parsing /proc status: no %s field", key)
}

// RSSBytes returns the resident set size of pid in bytes (VmRSS).
func RSSBytes(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading status of pid %d: %w", pid, err)
	}
	return ParseStatusKB(data, "VmRSS")
}

// Signal sends sig to pid after checking that the pid still belongs to the
// process recorded with startTime, so a reused pid is never signalled.
func Signal(pid int, startTime uint64, sig syscall.Signal) error {
	if !ProcessAlive(pid, startTime) {
		return fmt.Errorf("signalling pid %d: %w", pid, os.ErrProcessDone)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("signalling pid %d with %v: %w", pid, sig, err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// Children returns the pids of pid's direct children, read from
// /proc/PID/task/*/children.
func Children(pid int) []int {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var out []int
	for _, t := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// Tree returns pid and all its descendants.
func Tree(pid int) []int {
	out := []int{pid}
	for i := 0; i < len(out) && i < 4096; i++ {
		out = append(out, Children(out[i])...)
	}
	return out
}

// ProcInfo is one process of the process table.
type ProcInfo struct {
	PID, PPID int
	StartTime uint64
	State     byte
	// Args is the command line, empty for kernel threads.
	Args []string
}

// Processes reads the process table from /proc. Processes that exit while
// it reads are left out.
func Processes() []ProcInfo {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []ProcInfo
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := ReadProcStat(pid)
		if err != nil {
			continue
		}
		p := ProcInfo{PID: pid, PPID: st.PPID, StartTime: st.StartTime, State: st.State}
		if data, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil {
			if data = bytes.TrimRight(data, "\x00"); len(data) > 0 {
				for _, a := range bytes.Split(data, []byte{0}) {
					p.Args = append(p.Args, string(a))
				}
			}
		}
		out = append(out, p)
	}
	return out
}
