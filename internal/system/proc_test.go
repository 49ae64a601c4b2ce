package system

import (
	"os"
	"os/exec"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseProcStat(t *testing.T) {
	// Captured from a real firecracker process, with a command name that
	// contains a space and a parenthesis to exercise the parser.
	sample := "4242 (fire (cracker)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 37 0 0 20 0 3 0 987654 1073741824 25600 18446744073709551615 1 1 0 0 0 0 0 4096 1 0 0 0 17 1 0 0 0 0 0\n"
	got, err := ParseProcStat([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	want := ProcStat{PID: 4242, Comm: "fire (cracker)", State: 'S', PPID: 1, UTime: 150, STime: 37, StartTime: 987654, RSSPages: 25600}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseProcStat mismatch (-want +got):\n%s", diff)
	}
}

func TestParseProcStatRejectsGarbage(t *testing.T) {
	for _, in := range []string{"", "12 no-parens S", "12 (x) S 1 2"} {
		if _, err := ParseProcStat([]byte(in)); err == nil {
			t.Errorf("ParseProcStat(%q) succeeded, want error", in)
		}
	}
}

func TestParseStatusKB(t *testing.T) {
	sample := "Name:\tfirecracker\nVmPeak:\t  100 kB\nVmRSS:\t   2048 kB\nThreads:\t3\n"
	got, err := ParseStatusKB([]byte(sample), "VmRSS")
	if err != nil {
		t.Fatal(err)
	}
	if got != 2048*1024 {
		t.Errorf("VmRSS = %d, want %d", got, 2048*1024)
	}
	if _, err := ParseStatusKB([]byte(sample), "VmSwap"); err == nil {
		t.Error("missing key: want error")
	}
}

func TestProcessAliveSelf(t *testing.T) {
	st, err := ReadProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !ProcessAlive(os.Getpid(), st.StartTime) {
		t.Error("own process not alive with its start time")
	}
	if ProcessAlive(os.Getpid(), st.StartTime+1) {
		t.Error("own process alive with a different start time (pid reuse not detected)")
	}
	if ProcessAlive(0, 0) {
		t.Error("pid 0 reported alive")
	}
}

func TestTreeFindsChildren(t *testing.T) {
	cmd := exec.Command("sleep", "5")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	found := false
	for _, p := range Tree(os.Getpid()) {
		if p == cmd.Process.Pid {
			found = true
		}
	}
	if !found {
		t.Errorf("Tree(self) = %v lacks child %d", Tree(os.Getpid()), cmd.Process.Pid)
	}
}

func TestProcessesListsSelfWithArgs(t *testing.T) {
	for _, p := range Processes() {
		if p.PID == os.Getpid() {
			if len(p.Args) == 0 || p.Args[0] != os.Args[0] || p.PPID != os.Getppid() || p.StartTime == 0 {
				t.Errorf("self = %+v, want args %v and ppid %d", p, os.Args, os.Getppid())
			}
			return
		}
	}
	t.Error("Processes() does not list this process")
}
