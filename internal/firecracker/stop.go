package firecracker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"banger/internal/system"
)

// Exit describes how a VMM process ended.
type Exit struct {
	// Known is true when the exit status was observed, which is only
	// possible for a VMM this driver started (and reaps) itself. An adopted
	// VMM's status goes to whoever is its parent now.
	Known bool
	// Code is the exit code; -1 when a signal ended the process.
	Code int
	// Signal is the signal that ended the process, if any.
	Signal syscall.Signal
}

func (e Exit) String() string {
	switch {
	case !e.Known:
		return "exited (status unknown)"
	case e.Signal != 0:
		return "killed by " + unix.SignalName(e.Signal)
	default:
		return "exit status " + strconv.Itoa(e.Code)
	}
}

// Alive reports whether the VMM process still runs: its pid exists, is not
// a zombie, and has the recorded start time.
func (d *Driver) Alive(p Process) bool {
	return system.ProcessAlive(p.PID, p.StartTime)
}

// Wait blocks until the VMM process has exited and returns how it ended, or
// returns ctx's error. It notices an exit at once: for its own children it
// waits on the reaper, for any other process on a pidfd (falling back to
// polling /proc every 100 ms where pidfds are unavailable).
func (d *Driver) Wait(ctx context.Context, p Process) (Exit, error) {
	if c := d.childOf(p); c != nil {
		select {
		case <-c.done:
			return c.exit, nil
		case <-ctx.Done():
			return Exit{}, ctx.Err()
		}
	}
	fd, err := unix.PidfdOpen(p.PID, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return Exit{}, nil
		}
		return Exit{}, pollExit(ctx, p)
	}
	defer unix.Close(fd)
	// The pidfd refers to whatever process has the pid now; if that is not
	// the recorded one, the recorded one is gone.
	if !system.ProcessAlive(p.PID, p.StartTime) {
		return Exit{}, nil
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 100)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return Exit{}, pollExit(ctx, p)
		}
		if n > 0 {
			return Exit{}, nil
		}
		if ctx.Err() != nil {
			return Exit{}, ctx.Err()
		}
	}
}

// pollExit polls /proc until the process is gone.
func pollExit(ctx context.Context, p Process) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for system.ProcessAlive(p.PID, p.StartTime) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// waitExit waits up to timeout for the process to exit and reports whether
// it did.
func (d *Driver) waitExit(ctx context.Context, p Process, timeout time.Duration) (bool, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := d.Wait(wctx, p)
	if err == nil {
		return true, nil
	}
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	return false, nil
}

// ErrForcedStop says Shutdown stopped the VMM by signal because the guest
// did not power off within the timeout: what the guest had not yet written
// to its disks is lost. The VMM is gone when Shutdown returns it.
var ErrForcedStop = errors.New("the guest did not power off")

// Shutdown stops the VMM: it asks the guest to shut down (SendCtrlAltDel),
// waits up to timeout for the process to exit, then sends SIGTERM, waits
// TermTimeout, then SIGKILL, waits KillTimeout. Each stage is logged. A VMM
// that is already gone is not an error; one stopped by signal returns an
// error wrapping ErrForcedStop. The API socket is removed after the
// process has exited.
func (d *Driver) Shutdown(ctx context.Context, p Process, timeout time.Duration) error {
	log := d.log.With("vm", p.ID, "pid", p.PID)
	if !d.Alive(p) {
		log.Debug("vmm already stopped")
		d.removeSocket(p)
		return nil
	}
	log.Info("stopping vmm: sending ctrl-alt-del", "timeout", timeout)
	if ok, err := d.askPowerOff(ctx, p, timeout); err != nil {
		return fmt.Errorf("stopping vmm of vm %s: %w", p.ID, err)
	} else if ok {
		log.Info("vmm stopped after ctrl-alt-del")
		d.removeSocket(p)
		return nil
	}
	log.Warn("vmm still running, sending SIGTERM", "timeout", d.termTimeout)
	if err := d.send(p, syscall.SIGTERM); err != nil {
		log.Warn("sending SIGTERM", "err", err)
	}
	if ok, err := d.waitExit(ctx, p, d.termTimeout); err != nil {
		return fmt.Errorf("stopping vmm of vm %s: %w", p.ID, err)
	} else if ok {
		log.Info("vmm stopped after SIGTERM")
		d.removeSocket(p)
		return fmt.Errorf("%w within %s; its VMM was stopped with SIGTERM", ErrForcedStop, timeout)
	}
	log.Warn("vmm still running, sending SIGKILL", "timeout", d.killTimeout)
	if err := d.Kill(ctx, p); err != nil {
		return fmt.Errorf("stopping vmm of vm %s: %w", p.ID, err)
	}
	return fmt.Errorf("%w within %s; its VMM was killed", ErrForcedStop, timeout)
}

// ctrlAltDelEvery is how often Shutdown repeats its request while the
// guest runs: a guest still booting may miss the first (on QEMU it is an
// ACPI power-button press, which only systemd-logind acts on, and logind
// may not run yet), and a repeated press every few seconds stays below
// systemd's burst limit for Ctrl-Alt-Del (7 in 2 s).
const ctrlAltDelEvery = 3 * time.Second

// askPowerOff sends ctrl-alt-del every ctrlAltDelEvery until the VMM
// exits or timeout passes, and reports whether it exited. A request that
// fails (the VMM may be closing its API as the guest powers off) is not
// repeated; the wait goes on.
func (d *Driver) askPowerOff(ctx context.Context, p Process, timeout time.Duration) (bool, error) {
	deadline := time.Now().Add(timeout)
	asking := true
	for {
		if asking {
			if err := d.ctrlAltDel(ctx, p); err != nil {
				d.log.Warn("sending ctrl-alt-del", "vm", p.ID, "pid", p.PID, "err", err)
				asking = false
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false, nil
		}
		wait := left
		if asking {
			wait = min(ctrlAltDelEvery, left)
		}
		if ok, err := d.waitExit(ctx, p, wait); err != nil || ok {
			return ok, err
		}
	}
}

// Kill ends the VMM with SIGKILL at once and waits up to KillTimeout for it to be
// gone. When the VMM leads its own process group, the whole group is killed,
// so helpers it started (QEMU under banger-vmm-qemu) do not linger.
func (d *Driver) Kill(ctx context.Context, p Process) error {
	if err := d.send(p, syscall.SIGKILL); err != nil {
		return fmt.Errorf("killing vmm of vm %s: %w", p.ID, err)
	}
	ok, err := d.waitExit(ctx, p, d.killTimeout)
	if err != nil {
		return fmt.Errorf("killing vmm of vm %s: %w", p.ID, err)
	}
	if !ok {
		return fmt.Errorf("killing vmm of vm %s: pid %d still running %s after SIGKILL", p.ID, p.PID, d.killTimeout)
	}
	d.log.Info("vmm killed", "vm", p.ID, "pid", p.PID)
	d.removeSocket(p)
	return nil
}

// send signals the VMM after checking its pid and start time. A process
// that is already gone is not an error. VMMs run as the daemon's user, so
// a VMM the daemon may not signal was started by someone else.
func (d *Driver) send(p Process, sig syscall.Signal) error {
	if p.PID <= 0 {
		return nil
	}
	target := p.PID
	if sig == syscall.SIGKILL {
		if pgid, err := unix.Getpgid(p.PID); err == nil && pgid == p.PID {
			target = -p.PID
		}
	}
	err := d.signal(target, p.StartTime, sig)
	switch {
	case err == nil, errors.Is(err, os.ErrProcessDone):
		return nil
	case errors.Is(err, syscall.EPERM) && d.Alive(p):
		return fmt.Errorf("%w: the vmm runs as another user (root, or an older banger through sudo); stop it as that user", err)
	case errors.Is(err, syscall.EPERM):
		return nil
	default:
		return err
	}
}

// signalProcess is the real Driver.signal: pid may be negative for a
// process group led by -pid; the leader's start time is checked first.
func signalProcess(pid int, start uint64, sig syscall.Signal) error {
	if pid > 0 {
		return system.Signal(pid, start, sig)
	}
	if !system.ProcessAlive(-pid, start) {
		return fmt.Errorf("signalling process group %d: %w", -pid, os.ErrProcessDone)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("signalling process group %d with %v: %w", -pid, sig, err)
	}
	return nil
}

// removeSocket deletes the API socket of a VMM that has exited.
func (d *Driver) removeSocket(p Process) {
	if p.Socket == "" {
		return
	}
	if err := os.Remove(p.Socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		d.log.Warn("removing api socket", "vm", p.ID, "path", p.Socket, "err", err)
	}
}
