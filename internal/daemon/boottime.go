package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"banger/internal/api"
	"banger/internal/guest"
	"banger/internal/vm"
)

// consoleReadLimit bounds how much of a boot's console output the timeline
// reads: the marks come in its first few hundred lines.
const consoleReadLimit = 4 << 20

// noteBootStart replaces the VM's boot record with a new one: the VMM
// starts now, and the boot's console output follows what the console log
// holds already.
// The record is on the wall clock, as the SSH client's readiness is, not
// on deps.Now.
func (d *Daemon) noteBootStart(v *vm.VM) error {
	rec := vm.BootRecord{VMMStart: time.Now()}
	if st, err := os.Stat(v.ConsoleLog()); err == nil {
		rec.ConsoleOffset = st.Size()
	}
	return writeBootRecord(v, rec)
}

// noteSSH completes the VM's boot record with the first time the daemon's
// SSH client got in, and logs the boot's timeline. Later waits change
// nothing. A failure costs the timeline only, so it is logged.
func (d *Daemon) noteSSH(v *vm.VM, ready guest.Readiness) {
	rec, err := readBootRecord(v)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			d.log.Warn("reading the boot record", "vm", v.Name, "path", v.BootFile(), "err", err)
		}
		return
	}
	if !rec.SSHAnswered.IsZero() || ready.Answered.IsZero() || ready.Answered.Before(rec.VMMStart) {
		return
	}
	rec.SSHAnswered = ready.Answered
	if portOpenKnown(ready) {
		rec.PortOpen = ready.Connected
	}
	if err := writeBootRecord(v, rec); err != nil {
		d.log.Warn("writing the boot record", "vm", v.Name, "path", v.BootFile(), "err", err)
		return
	}
	t := vm.Timeline(rec, readConsoleMarks(v, rec))
	attrs := []any{"vm", v.Name, "total_ms", t.Total.Milliseconds(), "origin", t.Origin}
	for _, p := range t.Phases {
		attrs = append(attrs, "phase_"+p.Name+"_ms", p.Duration.Milliseconds())
	}
	d.log.Info("boot timeline", attrs...)
}

// bootTimeline renders the VM's last boot, or nil when it has none.
func (d *Daemon) bootTimeline(v *vm.VM) *api.BootTimeline {
	rec, err := readBootRecord(v)
	if err != nil {
		return nil
	}
	t := vm.Timeline(rec, readConsoleMarks(v, rec))
	out := &api.BootTimeline{VMMStartedAt: t.VMMStart, TotalMS: t.Total.Milliseconds(), Origin: t.Origin, Phases: []api.BootPhase{}}
	for _, p := range t.Phases {
		out.Phases = append(out.Phases, api.BootPhase{Name: p.Name, From: p.From, To: p.To,
			StartMS: p.Start.Milliseconds(), DurationMS: p.Duration.Milliseconds(), Clock: p.Clock})
	}
	return out
}

// readConsoleMarks reads the boot marks of the boot rec describes from the
// VM's console log; none when it cannot be read.
func readConsoleMarks(v *vm.VM, rec vm.BootRecord) vm.ConsoleMarks {
	f, err := os.Open(v.ConsoleLog())
	if err != nil {
		return nil
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil
	}
	off := rec.ConsoleOffset
	if off > st.Size() {
		off = 0 // the log was truncated since: read it all
	}
	data, err := io.ReadAll(io.LimitReader(io.NewSectionReader(f, off, st.Size()-off), consoleReadLimit))
	if err != nil {
		return nil
	}
	return vm.ParseConsole(data)
}

func readBootRecord(v *vm.VM) (vm.BootRecord, error) {
	var rec vm.BootRecord
	data, err := os.ReadFile(v.BootFile())
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return rec, fmt.Errorf("reading %s: %w", v.BootFile(), err)
	}
	return rec, nil
}

// writeBootRecord replaces the VM's boot record in one rename.
func writeBootRecord(v *vm.VM, rec vm.BootRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("writing %s: %w", v.BootFile(), err)
	}
	tmp := v.BootFile() + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", v.BootFile(), err)
	}
	if err := os.Rename(tmp, v.BootFile()); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", v.BootFile(), err)
	}
	return nil
}

// portOpenBound is how long before the connection an attempt that failed
// (unanswered: the guest had no address yet) may have been made for the
// connection to stand for sshd starting to listen. banger's initramfs
// configures the address before it starts sshd, so a guest that was not
// reachable then was not listening either.
const portOpenBound = 500 * time.Millisecond

// portOpenKnown reports whether ready's connection time stands for the
// moment the guest's sshd started listening: an earlier attempt found the
// port closed, or failed shortly before.
func portOpenKnown(ready guest.Readiness) bool {
	return ready.Refused || (!ready.LastFailed.IsZero() && ready.Connected.Sub(ready.LastFailed) <= portOpenBound)
}
