package daemon

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestArmedClockCommand runs the command a suspended guest is saved with,
// with the host's sh and perl, as the guest would: it says ready before
// it reads anything, then takes the time line. Dry, so the host's clock
// stays as it is; strict and warnings are checked on the perl.
func TestArmedClockCommand(t *testing.T) {
	for _, tool := range []string{"sh", "perl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s on this host", tool)
		}
	}
	if out, err := exec.Command("perl", "-Mstrict", "-Mwarnings", "-c", "-e", armedClockPerl).CombinedOutput(); err != nil {
		t.Fatalf("perl -c of the clock command: %v\n%s", err, out)
	}
	// Only sh and perl on PATH, and a date that says it was run: the
	// host's clock must not be touched, whichever way the command goes.
	bin := t.TempDir()
	for _, tool := range []string{"sh", "perl"} {
		p, _ := exec.LookPath(tool)
		if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(bin, "date"), []byte("#!/bin/sh\necho date ran\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "sh"), "-c", armedClockCommand)
	cmd.Env = []string{"PATH=" + bin, "BANGER_CLOCK_DRY=1"}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewReader(outPipe)
	if line, err := out.ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("first line %q, %v; want ready before any input", line, err)
	}
	if _, err := io.WriteString(in, "1795840244.000000005\n"); err != nil {
		t.Fatal(err)
	}
	in.Close()
	rest, _ := io.ReadAll(out)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the clock command: %v (said %q)", err, rest)
	}
	if got := strings.TrimSpace(string(rest)); got != "would set the clock to 1795840244.000000005" {
		t.Errorf("the clock command said %q", got)
	}
}
