package vm

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func ms(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }

func readSample(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// A console of an image from before the markers: the kernel's "Run /init"
// line and systemd's banner still place those two marks.
func TestParseConsoleWithoutMarkers(t *testing.T) {
	got := ParseConsole(readSample(t, "console-debian12-no-markers.log"))
	want := ConsoleMarks{MarkKernel: 0, MarkInitramfs: ms(2879.498), MarkSystemd: ms(4440.672)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("marks (-want +got):\n%s", diff)
	}
}

// A console with banger's markers; other marker names (an initramfs of a
// later banger) are skipped, and the kernel's "Run /init" line, which
// comes first, places /init.
func TestParseConsoleWithMarkers(t *testing.T) {
	got := ParseConsole(readSample(t, "console-debian12-markers.log"))
	want := ConsoleMarks{MarkKernel: 0, MarkInitramfs: ms(2464.555), MarkSwitchRoot: ms(3726.369),
		MarkSystemd: ms(4622.132), MarkSSHD: ms(9905.080)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("marks (-want +got):\n%s", diff)
	}
}

// A console log holds every boot of the VM: the marks are the last boot's.
func TestParseConsoleKeepsTheLastBoot(t *testing.T) {
	data := append(readSample(t, "console-debian12-markers.log"), readSample(t, "console-debian12-no-markers.log")...)
	got := ParseConsole(data)
	if _, ok := got[MarkSSHD]; ok {
		t.Errorf("marks %v carry the first boot's sshd", got)
	}
	if got[MarkSystemd] != ms(4440.672) {
		t.Errorf("systemd at %v, want the second boot's 4.440672s", got[MarkSystemd])
	}
}

// Without kernel timestamps the markers' own uptime counts; lines cut by
// other output and malformed markers are borne.
func TestParseConsoleMarkersWithoutTimestamps(t *testing.T) {
	console := strings.Join([]string{
		"Linux version 6.1.0 (builder) #1 SMP",
		"banger-boot: initramfs 0.91",
		"\x1b[0mbanger-boot: switch-root 1.20\r",
		"banger-boot: bogus 1.30",
		"banger-boot:",
		"banger-boot: sshd",
		"banger-boot: sshd 3.25",
		"banger-boot: sshd 9.99",
	}, "\n")
	got := ParseConsole([]byte(console))
	want := ConsoleMarks{MarkKernel: 0, MarkInitramfs: ms(910), MarkSwitchRoot: ms(1200), MarkSSHD: ms(3250)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("marks (-want +got):\n%s", diff)
	}
}

func TestParseConsoleWithoutABoot(t *testing.T) {
	for _, console := range []string{"", "fake console\n", `time=2026-11-27T20:40:41Z level=INFO msg="API server listening"` + "\n"} {
		if got := ParseConsole([]byte(console)); len(got) != 0 {
			t.Errorf("ParseConsole(%q) = %v, want no marks", console, got)
		}
	}
}

// On the daemon's clock (the port seen opening): the phases run between
// the marks in the order they happened and add up to the total. With
// sshd started by the initramfs before systemd, they end when SSH
// answered, whatever the guest printed later (systemd's banner).
func TestTimelineOnTheDaemonsClock(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 20, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name             string
		portOpen, answer time.Duration
		marks            ConsoleMarks
		want             []BootPhase
	}{{
		name: "systemd starts sshd", portOpen: ms(5000), answer: ms(5600),
		marks: ConsoleMarks{MarkKernel: 0, MarkInitramfs: ms(1200), MarkSwitchRoot: ms(1500), MarkSystemd: ms(2000), MarkSSHD: ms(4500)},
		want: []BootPhase{
			{Name: MarkVMM, From: "VMM start", To: "kernel start", Start: 0, Duration: ms(500), Clock: ClockEstimate},
			{Name: MarkKernel, From: "kernel start", To: "/init running", Start: ms(500), Duration: ms(1200), Clock: ClockGuest},
			{Name: MarkInitramfs, From: "/init running", To: "switch_root", Start: ms(1700), Duration: ms(300), Clock: ClockGuest},
			{Name: MarkSwitchRoot, From: "switch_root", To: "systemd running", Start: ms(2000), Duration: ms(500), Clock: ClockGuest},
			{Name: MarkSystemd, From: "systemd running", To: "sshd accepting", Start: ms(2500), Duration: ms(2500), Clock: ClockGuest},
			{Name: MarkSSHD, From: "sshd accepting", To: "SSH answered", Start: ms(5000), Duration: ms(600), Clock: ClockHost},
		},
	}, {
		name: "the initramfs starts sshd", portOpen: ms(2500), answer: ms(3200),
		marks: ConsoleMarks{MarkKernel: 0, MarkInitramfs: ms(1200), MarkSSHD: ms(2200), MarkSwitchRoot: ms(2250), MarkSystemd: ms(3500)},
		want: []BootPhase{
			{Name: MarkVMM, From: "VMM start", To: "kernel start", Start: 0, Duration: ms(300), Clock: ClockEstimate},
			{Name: MarkKernel, From: "kernel start", To: "/init running", Start: ms(300), Duration: ms(1200), Clock: ClockGuest},
			{Name: MarkInitramfs, From: "/init running", To: "sshd accepting", Start: ms(1500), Duration: ms(1000), Clock: ClockGuest},
			{Name: MarkSSHD, From: "sshd accepting", To: "switch_root", Start: ms(2500), Duration: ms(50), Clock: ClockGuest},
			{Name: MarkSwitchRoot, From: "switch_root", To: "SSH answered", Start: ms(2550), Duration: ms(650), Clock: ClockHost},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			rec := BootRecord{VMMStart: t0, PortOpen: t0.Add(tc.portOpen), SSHAnswered: t0.Add(tc.answer)}
			got := Timeline(rec, tc.marks)
			want := BootTimeline{VMMStart: t0, Origin: MarkVMM, Total: tc.answer, Phases: tc.want}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("timeline (-want +got):\n%s", diff)
			}
			var sum time.Duration
			for _, p := range got.Phases {
				sum += p.Duration
			}
			if sum != got.Total {
				t.Errorf("phases add up to %v, total %v", sum, got.Total)
			}
		})
	}
}

// Without the port seen opening, the guest clock stays the guest's: the
// phases count from the kernel's start, and the total is still known.
func TestTimelineOnTheGuestsClock(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 20, 0, 0, 0, time.UTC)
	rec := BootRecord{VMMStart: t0, SSHAnswered: t0.Add(7 * time.Second)}
	marks := ConsoleMarks{MarkKernel: 0, MarkInitramfs: ms(1200), MarkSystemd: ms(2000), MarkSSHD: ms(4500)}
	got := Timeline(rec, marks)
	if got.Origin != MarkKernel || got.Total != 7*time.Second {
		t.Errorf("origin %s, total %v; want kernel, 7s", got.Origin, got.Total)
	}
	var names []string
	for _, p := range got.Phases {
		names = append(names, p.Name)
		if p.Clock != ClockGuest {
			t.Errorf("phase %s on the %s clock", p.Name, p.Clock)
		}
	}
	// No switch-root mark: the initramfs phase runs to systemd.
	if diff := cmp.Diff([]string{MarkKernel, MarkInitramfs, MarkSystemd}, names); diff != "" {
		t.Errorf("phases (-want +got):\n%s", diff)
	}
	if p := got.Phases[1]; p.To != "systemd running" || p.Duration != ms(800) {
		t.Errorf("initramfs phase = %+v", p)
	}
}

// A guest clock ahead of the daemon's (sshd's guest time past the port's
// opening) leaves the VMM phase empty rather than negative.
func TestTimelineClocksDisagree(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 20, 0, 0, 0, time.UTC)
	rec := BootRecord{VMMStart: t0, PortOpen: t0.Add(4 * time.Second), SSHAnswered: t0.Add(4500 * time.Millisecond)}
	got := Timeline(rec, ConsoleMarks{MarkKernel: 0, MarkSSHD: ms(4200)})
	for _, p := range got.Phases {
		if p.Duration < 0 || p.Start < 0 {
			t.Errorf("phase %+v is negative", p)
		}
	}
	if got.Phases[0].Name != MarkVMM || got.Phases[0].Duration != 0 {
		t.Errorf("vmm phase = %+v, want empty", got.Phases[0])
	}
}

// A boot SSH has not answered yet has guest phases and no total.
func TestTimelineBeforeSSH(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 20, 0, 0, 0, time.UTC)
	got := Timeline(BootRecord{VMMStart: t0}, ConsoleMarks{MarkKernel: 0, MarkInitramfs: ms(1100)})
	if got.Total != 0 || got.Origin != MarkKernel || len(got.Phases) != 1 || got.Phases[0].Duration != ms(1100) {
		t.Errorf("timeline = %+v", got)
	}
	if got := Timeline(BootRecord{VMMStart: t0}, nil); len(got.Phases) != 0 {
		t.Errorf("timeline without marks = %+v", got)
	}
}
