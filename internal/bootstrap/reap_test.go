package bootstrap

import (
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTreeProcesses(t *testing.T) {
	const tree = "/cache/images/.k.work-123/tree"
	procs := []procInfo{
		{PID: 1, PPID: 0, Cmdline: "/sbin/init", Root: "/"},
		{PID: 100, PPID: 1, Cmdline: "bangerd", Root: "/"},                                      // self
		{PID: 101, PPID: 100, Cmdline: "mmdebstrap --mode=unshare bookworm " + tree, Root: "/"}, // ours, names tree
		{PID: 102, PPID: 101, Cmdline: "apt-get install", Root: "/"},                            // child of it
		{PID: 103, PPID: 102, Cmdline: "dpkg --configure", Root: tree},                          // chrooted
		{PID: 104, PPID: 1, Cmdline: "sh postinst", Root: tree},                                 // orphaned, chrooted
		{PID: 105, PPID: 100, Cmdline: "qemu-system-x86_64", Root: "/"},                         // ours, unrelated
		{PID: 200, PPID: 1, Cmdline: "ls " + tree, Root: "/"},                                   // someone else's
		{PID: 201, PPID: 1, Cmdline: "sh", Root: "/cache/images/.k.work-123/tree2"},             // other tree
	}
	var got []int
	for _, p := range treeProcesses(procs, 100, tree) {
		got = append(got, p.PID)
	}
	sort.Ints(got)
	if diff := cmp.Diff([]int{101, 102, 103, 104}, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}
