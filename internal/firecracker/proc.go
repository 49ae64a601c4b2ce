package firecracker

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"banger/internal/system"
)

// waitForChild finds the VMM that sudo (pid launcher) started: a
// descendant of launcher whose command line serves socket. Recording sudo's
// pid instead would make a later SIGKILL hit sudo and orphan the VMM.
func (d *Driver) waitForChild(ctx context.Context, launcher int, socket string, deadline time.Time, done <-chan struct{}, c *child) (int, error) {
	t := time.NewTicker(socketPoll)
	defer t.Stop()
	for {
		if pid := pickVMM(parentMap(), launcher, socket, cmdlineOrNil); pid > 0 {
			return pid, nil
		}
		select {
		case <-done:
			return 0, fmt.Errorf("sudo exited before starting the vmm: %s (is there a NOPASSWD sudoers rule for it? see `banger system sudoers`)", c.exit)
		case <-ctx.Done():
			return 0, fmt.Errorf("waiting for the vmm under sudo pid %d: %w", launcher, ctx.Err())
		case now := <-t.C:
			if now.After(deadline) {
				return 0, fmt.Errorf("waiting for the vmm under sudo pid %d: not found after %s", launcher, d.socketTimeout)
			}
		}
	}
}

// pickVMM returns the descendant of launcher, nearest first, whose command
// line serves socket and is not sudo itself, or 0. parents maps pid to
// parent pid; args returns a process's command line.
func pickVMM(parents map[int]int, launcher int, socket string, args func(pid int) []string) int {
	children := map[int][]int{}
	for pid, ppid := range parents {
		children[ppid] = append(children[ppid], pid)
	}
	queue := append([]int(nil), children[launcher]...)
	seen := map[int]bool{launcher: true}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		if a := args(pid); len(a) > 0 && filepath.Base(a[0]) != "sudo" && servesSocket(a, socket) {
			return pid
		}
		queue = append(queue, children[pid]...)
	}
	return 0
}

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

// parentMap maps every visible pid to its parent pid.
func parentMap() map[int]int {
	procs := system.Processes()
	m := make(map[int]int, len(procs))
	for _, p := range procs {
		m[p.PID] = p.PPID
	}
	return m
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

func cmdlineOrNil(pid int) []string {
	a, _ := cmdline(pid)
	return a
}

// ServingSockets maps the API socket of every running VMM (any process
// whose command line has `--api-sock PATH`, other than sudo) to its
// identity. Reconcile uses it to find VMMs whose start never completed
// from the daemon's point of view, such as after a kill -9 mid-start.
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
