package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"banger/internal/vm"
)

// vmmPoll is how often a wait on a booting guest checks that its VMM
// still runs.
const vmmPoll = 250 * time.Millisecond

// consoleTailLines is how much of the console an error about a dead VMM
// quotes: enough for a kernel panic's reason.
const consoleTailLines = 15

var errVMMExited = errors.New("the VMM exited")

// errBootStalled ends the wait of a cold boot whose guest console printed
// nothing for the boot stall timeout: under emulation a guest kernel has
// been seen to hang in its early boot, where it would otherwise hold the
// wait for SSH's whole timeout.
var errBootStalled = errors.New("the guest stopped booting")

// whileVMMRuns runs wait with a context that ends as soon as v's VMM
// process exits, so a guest that died while booting (a kernel panic, a
// killed VMM) fails the wait at once, quoting the console's last lines,
// rather than at the wait's timeout. A wait that times out with the VMM
// running quotes them too.
func (d *Daemon) whileVMMRuns(ctx context.Context, v *vm.VM, wait func(context.Context) error) error {
	if d.deps.VMM == nil || v.Process.PID == 0 {
		return wait(ctx)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		t := time.NewTicker(vmmPoll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if !d.deps.VMM.Alive(v.Process) {
					cancel(errVMMExited)
					return
				}
			}
		}
	}()
	err := wait(ctx)
	switch {
	case err == nil:
	case errors.Is(context.Cause(ctx), errVMMExited):
		err = fmt.Errorf("%w (vm %s, pid %d) while banger waited for its guest", errVMMExited, v.Name, v.Process.PID)
		if tail := consoleTail(v.ConsoleLog(), consoleTailLines); tail != "" {
			err = fmt.Errorf("%w; the console's last lines:\n%s", err, tail)
		}
	case errors.Is(err, context.DeadlineExceeded):
		// The VMM runs but its guest never answered: how far it booted
		// says why.
		if tail := consoleTail(v.ConsoleLog(), consoleTailLines); tail != "" {
			err = fmt.Errorf("%w; the console's last lines (%s):\n%s", err, v.ConsoleLog(), tail)
		}
	}
	return err
}

// whileBooting is whileVMMRuns for a cold boot: the wait also ends, with
// errBootStalled and the console's last lines, once the guest's console
// has not grown for the boot stall timeout.
func (d *Daemon) whileBooting(ctx context.Context, v *vm.VM, wait func(context.Context) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go watchConsole(ctx, v.ConsoleLog(), d.bootStall, func() { cancel(errBootStalled) })
	err := d.whileVMMRuns(ctx, v, wait)
	if err != nil && errors.Is(context.Cause(ctx), errBootStalled) {
		err = fmt.Errorf("%w: its console printed nothing for %s; the console's last lines (%s):\n%s",
			errBootStalled, d.bootStall, v.ConsoleLog(), consoleTail(v.ConsoleLog(), consoleTailLines))
	}
	return err
}

// watchConsole calls stalled once the file at path has kept its size for
// stall, and returns then or when ctx ends.
func watchConsole(ctx context.Context, path string, stall time.Duration, stalled func()) {
	t := time.NewTicker(min(time.Second, stall/4))
	defer t.Stop()
	size, since := int64(-1), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			var n int64
			if st, err := os.Stat(path); err == nil {
				n = st.Size()
			}
			if n != size {
				size, since = n, now
			} else if now.Sub(since) >= stall {
				stalled()
				return
			}
		}
	}
}

// consoleTail returns the last n lines of the log at path, or "" when it
// cannot be read.
func consoleTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if err := seekTail(f, n); err != nil {
		return ""
	}
	b, err := io.ReadAll(io.LimitReader(f, 16<<10))
	if err != nil {
		return ""
	}
	return strings.TrimRight(string(b), "\n")
}
