package vm

import (
	"bufio"
	"bytes"
	"cmp"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Boot marks are the instants of a boot that the guest's console shows, on
// the guest kernel's clock (zero when the kernel starts). banger's
// initramfs and guest units print the marks the kernel does not, as
//
//	banger-boot: NAME UPTIME
//
// through /dev/kmsg, so the console shows them with the kernel's
// timestamp; UPTIME (from /proc/uptime) stands in when the kernel prints
// no timestamps.
const (
	// MarkKernel is the kernel's start: the guest clock's zero.
	MarkKernel = "kernel"
	// MarkInitramfs is /init of the initramfs running (banger's marker,
	// else the kernel's "Run /init as init process").
	MarkInitramfs = "initramfs"
	// MarkSwitchRoot is the initramfs handing over: the root is mounted
	// and the network configured.
	MarkSwitchRoot = "switch-root"
	// MarkSystemd is systemd running ("systemd[1]: systemd VERSION
	// running in system mode").
	MarkSystemd = "systemd"
	// MarkSSHD is sshd accepting connections.
	MarkSSHD = "sshd"
)

// BootMarkerPrefix starts a boot marker line on the console.
const BootMarkerPrefix = "banger-boot: "

// guestMarks are the marks read from the console, in boot order.
var guestMarks = []string{MarkKernel, MarkInitramfs, MarkSwitchRoot, MarkSystemd, MarkSSHD}

// ConsoleMarks are the boot marks found on a console, each as time since
// the kernel started.
type ConsoleMarks map[string]time.Duration

var (
	printkLine    = regexp.MustCompile(`^\[\s*(\d+\.\d+)\]\s?(.*)$`)
	systemdUp     = regexp.MustCompile(`systemd\[1\]: systemd \S+ running in system mode`)
	kernelStarted = regexp.MustCompile(`^Linux version \S+`)
)

// ParseConsole finds the boot marks of the last boot on a guest console
// log: banger's markers, the kernel's own lines and systemd's banner. A
// kernel start (its "Linux version" line) discards the marks before it; a
// mark seen twice keeps its first time. A console without marks gives
// none.
func ParseConsole(data []byte) ConsoleMarks {
	marks := ConsoleMarks{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		at, text, stamped := time.Duration(0), line, false
		if m := printkLine.FindStringSubmatch(line); m != nil {
			at, stamped = seconds(m[1]), true
			text = m[2]
		}
		// Drop what precedes the text on its line (another writer's
		// half line, a colour code).
		if i := strings.Index(text, BootMarkerPrefix); i >= 0 {
			text = text[i:]
		}
		switch {
		case kernelStarted.MatchString(text):
			marks = ConsoleMarks{MarkKernel: at}
		case strings.HasPrefix(text, BootMarkerPrefix):
			f := strings.Fields(strings.TrimPrefix(text, BootMarkerPrefix))
			if len(f) == 0 || !isGuestMark(f[0]) {
				continue
			}
			if !stamped {
				if len(f) < 2 {
					continue
				}
				at = seconds(f[1])
			}
			marks.note(f[0], at)
		case stamped && strings.HasPrefix(text, "Run /init as init process"):
			marks.note(MarkInitramfs, at)
		case stamped && systemdUp.MatchString(text):
			marks.note(MarkSystemd, at)
		}
	}
	if len(marks) > 0 {
		// The kernel's start is the clock's zero, printed or not.
		marks[MarkKernel] = 0
	}
	return marks
}

// note records a mark unless it was seen already. banger's initramfs
// marker follows the kernel's "Run /init" line closely; either will do.
func (m ConsoleMarks) note(name string, at time.Duration) {
	if _, ok := m[name]; !ok {
		m[name] = at
	}
}

func isGuestMark(name string) bool {
	for _, g := range guestMarks {
		if g == name && g != MarkKernel {
			return true
		}
	}
	return false
}

// seconds parses a decimal number of seconds ("12.345678"); malformed
// input gives 0.
func seconds(s string) time.Duration {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}

// BootRecord is what the daemon notes about one boot on its own clock. It
// is kept in the VM's state directory (BootFile) and replaced by the next
// boot.
type BootRecord struct {
	// VMMStart is when the daemon started the VMM.
	VMMStart time.Time `json:"vmm_start"`
	// ConsoleOffset is the console log's size then: this boot's output
	// follows it.
	ConsoleOffset int64 `json:"console_offset"`
	// PortOpen is when the daemon's SSH client connected to a port it had
	// found closed, or could not reach, just before (so within one poll
	// interval of sshd starting to listen); zero when nothing says when
	// sshd started (the first attempt connected).
	PortOpen time.Time `json:"port_open,omitzero"`
	// SSHAnswered is when the daemon's SSH client first completed a
	// handshake with the guest; zero until then.
	SSHAnswered time.Time `json:"ssh_answered,omitzero"`
}

// Clocks a boot phase is measured on.
const (
	// ClockGuest phases are read from the guest console's timestamps.
	ClockGuest = "guest"
	// ClockHost phases are measured by the daemon.
	ClockHost = "host"
	// ClockEstimate phases are derived: the host clock when the SSH port
	// opened, less the guest clock when sshd said it accepts connections.
	ClockEstimate = "estimate"
)

// BootPhase is one interval of a boot.
type BootPhase struct {
	// Name is the mark the phase starts at.
	Name string
	// From and To say what happens at its ends.
	From, To string
	// Start is the phase's start since the timeline's origin.
	Start    time.Duration
	Duration time.Duration
	Clock    string
}

// BootTimeline is a boot cut into phases.
type BootTimeline struct {
	// VMMStart is when the daemon started the VMM.
	VMMStart time.Time
	// Origin is the mark the phases' Start counts from: MarkVMM when the
	// guest clock could be placed on the daemon's, else MarkKernel.
	Origin string
	// Total is VMM start to SSH answered; zero when SSH has not answered.
	Total  time.Duration
	Phases []BootPhase
}

// The host-side marks of a timeline.
const (
	// MarkVMM is the daemon starting the VMM.
	MarkVMM = "vmm"
	// MarkSSH is the daemon's SSH client completing a handshake.
	MarkSSH = "ssh"
)

// markLabels says what each mark is, for a phase's From and To.
var markLabels = map[string]string{
	MarkVMM:        "VMM start",
	MarkKernel:     "kernel start",
	MarkInitramfs:  "/init running",
	MarkSwitchRoot: "switch_root",
	MarkSystemd:    "systemd running",
	MarkSSHD:       "sshd accepting",
	MarkSSH:        "SSH answered",
}

// Timeline combines the daemon's record of a boot with the marks of its
// console. The guest clock is placed on the daemon's when both saw sshd
// start: the kernel then started when the port opened less sshd's guest
// time. Phases run between consecutive marks that are known, in the order
// they happened; a missing mark merges its two neighbours.
func Timeline(rec BootRecord, marks ConsoleMarks) BootTimeline {
	t := BootTimeline{VMMStart: rec.VMMStart, Origin: MarkKernel}
	if !rec.SSHAnswered.IsZero() && !rec.VMMStart.IsZero() {
		t.Total = rec.SSHAnswered.Sub(rec.VMMStart)
	}
	type point struct {
		name  string
		at    time.Duration
		clock string
	}
	var pts []point
	sshd, haveSSHD := marks[MarkSSHD]
	anchored := haveSSHD && !rec.PortOpen.IsZero() && !rec.VMMStart.IsZero() && t.Total > 0
	offset := time.Duration(0)
	if anchored {
		t.Origin = MarkVMM
		offset = rec.PortOpen.Sub(rec.VMMStart) - sshd
		if offset < 0 {
			offset = 0 // the clocks disagree; the VMM phase is unknown
		}
		pts = append(pts, point{MarkVMM, 0, ClockHost})
	}
	for _, name := range guestMarks {
		if at, ok := marks[name]; ok {
			clock := ClockGuest
			if name == MarkKernel && anchored {
				clock = ClockEstimate
			}
			pts = append(pts, point{name, offset + at, clock})
		}
	}
	if anchored {
		pts = append(pts, point{MarkSSH, t.Total, ClockHost})
	}
	// The marks in the order they happened: banger's initramfs starts sshd
	// before systemd runs, a guest whose sshd systemd starts the other way
	// round.
	// The timeline ends when SSH answered: a guest that answers while
	// systemd boots may print systemd's banner after that.
	slices.SortStableFunc(pts, func(a, b point) int { return cmp.Compare(a.at, b.at) })
	if anchored {
		end := slices.IndexFunc(pts, func(p point) bool { return p.name == MarkSSH })
		pts = pts[:end+1]
	}
	for i := 0; i+1 < len(pts); i++ {
		from, to := pts[i], pts[i+1]
		d := to.at - from.at
		if d < 0 {
			d = 0
		}
		// A phase is on the clock of the mark it ends at, except the
		// guest's own phases, which the guest clock measures whole.
		clock := to.clock
		if from.clock == ClockEstimate && to.clock == ClockGuest {
			clock = ClockGuest
		}
		t.Phases = append(t.Phases, BootPhase{Name: from.name, From: markLabels[from.name], To: markLabels[to.name],
			Start: from.at, Duration: d, Clock: clock})
	}
	return t
}
