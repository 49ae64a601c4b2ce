package hostsetup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"banger/internal/allocation"
	"banger/internal/nat"
	"banger/internal/system"
)

// vmmCommands are the process names of the VMMs bangerd starts.
var vmmCommands = []string{"firecracker", "banger-vmm-qemu"}

// daemonStopTimeout bounds the wait for a user's bangerd to exit after
// SIGTERM before it is killed.
const daemonStopTimeout = 10 * time.Second

// TeardownOptions say what Teardown removes beyond the host footprint.
type TeardownOptions struct {
	// Data also deletes the user's banger data: images, VM disks, the
	// database and logs, caches (their default XDG directories).
	Data bool
}

// Teardown removes what banger put on the host for opts.User ("root" for
// bangerd running as root, on the default network), when no VM of theirs
// runs in this network namespace: their bangerd here, resolver settings,
// TAPs, bridge and NAT chains, their runtime directory (sockets), and
// net.ipv4.ip_forward goes back to what it was before banger turned it on
// once no banger network is left. The set-up itself (allocation, helper,
// sudoers rule, grants) stays: `system setup --remove` takes that back.
func Teardown(ctx context.Context, opts Options, deps Deps, t TeardownOptions) error {
	opts.fill()
	deps.fill()
	if deps.EUID != 0 {
		return errors.New("system teardown removes bridges and firewall rules: run it as root, `sudo banger system teardown`")
	}
	if opts.User == "" {
		return errors.New("system teardown: name the user with --user NAME, or --all (under sudo, the invoking user is the default)")
	}
	unlock, err := opts.Registry.Lock()
	if err != nil {
		return fmt.Errorf("system teardown: %w", err)
	}
	defer unlock()
	a := allocation.Default()
	if opts.User != "root" {
		if a, err = opts.Registry.Load(opts.User); err != nil {
			return fmt.Errorf("system teardown for %s: %w", opts.User, err)
		}
	}
	acct, acctErr := deps.Accounts.Lookup(a.User)
	if acctErr != nil {
		say(deps.Out, "account %s is gone: no processes, runtime directory or data of theirs to look at", a.User)
	} else if err := checkNoVMs(deps, acct); err != nil {
		return err
	}
	errs := footprint(ctx, opts, deps, a, acctErr == nil)
	if t.Data && acctErr == nil {
		errs = append(errs, removeData(deps, acct)...)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("system teardown for %s (run it again to finish): %w", a.User, err)
	}
	say(deps.Out, "banger's footprint on this host is gone for %s", a.User)
	return nil
}

// checkNoVMs refuses while a VMM of the user runs in this network
// namespace: its TAP is on the bridge teardown would remove.
func checkNoVMs(deps Deps, acct Account) error {
	procs, err := deps.Processes()
	if err != nil {
		return fmt.Errorf("system teardown: listing processes: %w", err)
	}
	var running []string
	for _, p := range userProcesses(procs, acct.UID, vmmCommands...) {
		running = append(running, fmt.Sprintf("%s pid %d", p.Comm, p.PID))
	}
	if len(running) > 0 {
		return fmt.Errorf("system teardown for %s: %d of their VMs still run (%s); stop them first, as %s: `banger vm stop --all` (or `banger vm rm --all --force`)",
			acct.Name, len(running), strings.Join(running, ", "), acct.Name)
	}
	return nil
}

// userProcesses are uid's processes named one of comms in this network
// namespace.
func userProcesses(procs []Process, uid int, comms ...string) []Process {
	own := ownNetNS()
	var out []Process
	for _, p := range procs {
		if p.UID == uid && p.NetNS == own && slices.Contains(comms, p.Comm) {
			out = append(out, p)
		}
	}
	return out
}

// footprint removes a's bangerd in this namespace, resolver settings,
// network, runtime directory and, when it was the last banger network
// here, restores ip_forward. Errors are collected; each step goes on.
func footprint(ctx context.Context, opts Options, deps Deps, a allocation.Allocation, hasAccount bool) []error {
	var errs []error
	if hasAccount {
		errs = append(errs, stopDaemons(deps, a)...)
	}
	if _, err := deps.Links.Link(a.Bridge); err == nil {
		if _, err := deps.LookPath("resolvectl"); err == nil {
			p, err := deps.plumbing(a)
			if err == nil {
				err = p.DNSDown(ctx)
			}
			if err != nil {
				errs = append(errs, err)
			} else {
				say(deps.Out, "reverted the resolver settings of %s", a.Bridge)
			}
		}
	}
	errs = append(errs, teardown(ctx, deps, a)...)
	if hasAccount {
		errs = append(errs, removeRuntimeDir(opts, deps, a)...)
	}
	if err := restoreForward(ctx, opts, deps, a); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// stopDaemons ends a's bangerd in this network namespace: SIGTERM, then
// SIGKILL after daemonStopTimeout. VMMs are not its children: they would
// survive, but checkNoVMs made sure none runs.
func stopDaemons(deps Deps, a allocation.Allocation) []error {
	procs, err := deps.Processes()
	if err != nil {
		return []error{fmt.Errorf("listing processes: %w", err)}
	}
	var errs []error
	for _, p := range userProcesses(procs, a.UID, "bangerd") {
		if err := deps.Signal(p.PID, p.StartTime, syscall.SIGTERM); err != nil {
			errs = append(errs, fmt.Errorf("stopping bangerd pid %d of %s: %w", p.PID, a.User, err))
			continue
		}
		deadline := time.Now().Add(daemonStopTimeout)
		for alive(deps, p) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if alive(deps, p) {
			_ = deps.Signal(p.PID, p.StartTime, syscall.SIGKILL)
			say(deps.Out, "killed bangerd pid %d of %s (it did not exit within %s of SIGTERM)", p.PID, a.User, daemonStopTimeout)
			continue
		}
		say(deps.Out, "stopped bangerd pid %d of %s", p.PID, a.User)
	}
	return errs
}

func alive(deps Deps, p Process) bool {
	procs, err := deps.Processes()
	if err != nil {
		return false
	}
	return slices.ContainsFunc(procs, func(q Process) bool { return q.PID == p.PID && q.StartTime == p.StartTime })
}

// removeRuntimeDir removes RuntimeBase/UID/banger (the daemon's and VMMs'
// sockets) once no bangerd of the user runs anywhere: a daemon of theirs
// in another namespace may still use it.
func removeRuntimeDir(opts Options, deps Deps, a allocation.Allocation) []error {
	dir := filepath.Join(opts.RuntimeBase, strconv.Itoa(a.UID), "banger")
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	procs, err := deps.Processes()
	if err != nil {
		return []error{fmt.Errorf("listing processes: %w", err)}
	}
	for _, p := range procs {
		if p.UID == a.UID && p.Comm == "bangerd" {
			say(deps.Out, "kept %s: a bangerd of %s runs in another network namespace (pid %d)", dir, a.User, p.PID)
			return nil
		}
	}
	removed, err := removeOwnedTree(filepath.Dir(dir), "banger", a.UID)
	if err != nil {
		return []error{fmt.Errorf("removing the runtime directory of %s: %w", a.User, err)}
	}
	if removed {
		say(deps.Out, "removed %s (sockets)", dir)
	}
	return nil
}

// removeOwnedTree removes base/rel if it is a directory (not a symlink)
// owned by uid, and reports whether it did. It works through an os.Root
// at base, so a symlink the user swaps in on the way cannot make root
// delete anything outside base.
func removeOwnedTree(base, rel string, uid int) (bool, error) {
	root, err := os.OpenRoot(base)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer root.Close()
	st, err := root.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !st.IsDir() || int(st.Sys().(*syscall.Stat_t).Uid) != uid {
		return false, fmt.Errorf("%s is not a directory owned by uid %d; left alone", filepath.Join(base, rel), uid)
	}
	if err := root.RemoveAll(rel); err != nil {
		return false, err
	}
	return true, nil
}

// restoreForward puts net.ipv4.ip_forward back once no banger bridge is
// left in this namespace (root's or any set-up user's but a's).
func restoreForward(ctx context.Context, opts Options, deps Deps, a allocation.Allocation) error {
	others, err := opts.Registry.List()
	if err != nil {
		return err
	}
	for _, o := range append(others, allocation.Default()) {
		if o.Bridge == a.Bridge {
			continue
		}
		if _, err := deps.Links.Link(o.Bridge); err == nil {
			say(deps.Out, "left net.ipv4.ip_forward as it is: bridge %s of %s still needs it", o.Bridge, o.User)
			return nil
		}
	}
	record, err := nat.ForwardRecordPath(opts.ForwardDir)
	if err != nil {
		return err
	}
	run, _ := deps.Runner.(system.InputRunner)
	if run == nil {
		run = system.Plain()
	}
	changed, err := nat.RestoreForward(ctx, nat.Deps{Runner: run, LookPath: deps.LookPath, ReadFile: deps.ReadFile}, record)
	if err != nil {
		return err
	}
	if changed {
		say(deps.Out, "restored net.ipv4.ip_forward=0, its value before banger turned it on")
	}
	return nil
}

// removeData deletes the user's banger data in their default XDG
// directories: images, VM disks, database, logs and caches. Their config
// file stays.
func removeData(deps Deps, acct Account) []error {
	if acct.Home == "" {
		return []error{fmt.Errorf("removing the data of %s: the account has no home directory", acct.Name)}
	}
	var errs []error
	for _, rel := range []string{".local/share/banger", ".local/state/banger", ".cache/banger"} {
		dir := filepath.Join(acct.Home, rel)
		removed, err := removeOwnedTree(acct.Home, rel, acct.UID)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("removing the data of %s: %w", acct.Name, err))
		case removed:
			say(deps.Out, "removed %s", dir)
		}
	}
	return errs
}
