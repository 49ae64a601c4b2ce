package privhelper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"banger/internal/allocation"
	"banger/internal/nat"
	"banger/internal/network"
	"banger/internal/system"
)

// DefaultLockPath serializes helper calls, so one call's checks still hold
// when it acts. Its directory is made root-owned by the helper.
const DefaultLockPath = "/run/banger/helper.lock"

// securePath is the only PATH the helper's commands see.
const securePath = "/usr/sbin:/usr/bin:/sbin:/bin"

// Exit statuses of the helper.
const (
	ExitOK      = 0
	ExitFailed  = 1 // the change was attempted and failed
	ExitRefused = 2 // nothing was attempted
)

// Invocation is what the helper learns from the kernel and from sudo.
type Invocation struct {
	Args []string
	// EUID is the helper's effective uid; it must be 0.
	EUID int
	// SudoUID is sudo's SUDO_UID: the invoking user. Empty when root ran
	// the helper without sudo. sudo sets it itself, whatever the caller's
	// environment held.
	SudoUID string
}

// Users looks up accounts in the host's user database.
type Users interface {
	// LookupUID returns the name of the account with uid.
	LookupUID(uid int) (string, error)
	// LookupName returns the uid of the account named name.
	LookupName(name string) (int, error)
}

// Deps are the helper's host access.
type Deps struct {
	Registry allocation.Registry
	Users    Users
	// Lock serializes helper calls; it returns the release function.
	Lock   func() (func(), error)
	Direct DirectDeps
	Stdout io.Writer
	Stderr io.Writer
}

// caller identifies who the helper acts for: the allocation's user.
func caller(inv Invocation, req Request, users Users) (string, int, error) {
	if inv.EUID != 0 {
		return "", 0, refuse("banger-helper must run as root, through `sudo -n` (uid %d)", inv.EUID)
	}
	uid := 0
	if inv.SudoUID != "" {
		n, err := strconv.Atoi(inv.SudoUID)
		if err != nil || n < 0 || strconv.Itoa(n) != inv.SudoUID {
			return "", 0, refuse("SUDO_UID %q is not a uid", inv.SudoUID)
		}
		uid = n
	}
	if uid == 0 {
		if req.User == "" {
			return "", 0, refuse("root must name the user whose allocation to act on: --user NAME")
		}
		target, err := users.LookupName(req.User)
		if err != nil {
			return "", 0, refuse("--user %s: %v", req.User, err)
		}
		if target == 0 {
			return "", 0, refuse("--user %s: root's network is the default allocation, which bangerd as root manages itself", req.User)
		}
		return req.User, target, nil
	}
	if req.User != "" {
		return "", 0, refuse("only root may name --user (caller uid %d)", uid)
	}
	name, err := users.LookupUID(uid)
	if err != nil {
		return "", 0, refuse("caller uid %d: %v", uid, err)
	}
	if err := allocation.ValidateUser(name); err != nil {
		return "", 0, refuse("caller uid %d: %v", uid, err)
	}
	return name, uid, nil
}

// Run is the helper: it checks the call, acts on the caller's allocation,
// and returns the exit status. Refusals and failures are written to
// stderr, one line; success to stdout, one line.
func Run(ctx context.Context, inv Invocation, deps Deps) int {
	req, err := Parse(inv.Args)
	if err == nil {
		err = run(ctx, inv, req, deps)
	}
	if err == nil {
		fmt.Fprintf(deps.Stdout, "banger-helper: %s done\n", req.Verb)
		return ExitOK
	}
	fmt.Fprintf(deps.Stderr, "banger-helper: %v\n", err)
	var r *RefusedError
	if errors.As(err, &r) {
		return ExitRefused
	}
	return ExitFailed
}

func run(ctx context.Context, inv Invocation, req Request, deps Deps) error {
	name, uid, err := caller(inv, req, deps.Users)
	if err != nil {
		return err
	}
	a, err := deps.Registry.Load(name)
	if err != nil {
		return refuse("%v", err)
	}
	if a.UID != uid {
		return refuse("the allocation of %s records uid %d, the caller is uid %d: run `sudo banger system setup --user %s` again", name, a.UID, uid, name)
	}
	release, err := deps.Lock()
	if err != nil {
		return err
	}
	defer release()
	links := deps.Direct.Links
	if links == nil {
		links = network.Netlink{}
		deps.Direct.Links = links
	}
	if err := Check(req, a, links); err != nil {
		return err
	}
	d, err := NewDirect(a, deps.Direct)
	if err != nil {
		return refuse("%v", err)
	}
	return Do(ctx, d, req)
}

// Paths are the helper's fixed locations. cmd/banger-helper sets them at
// build time; its caller cannot change them.
type Paths struct {
	UsersDir string
	Lock     string
}

// Main is the helper's process: it keeps sudo's SUDO_UID, drops the rest
// of the environment, works from / with umask 022, gives the call 30
// seconds, and returns the exit status.
func Main(paths Paths) int {
	inv := Invocation{Args: os.Args[1:], EUID: os.Geteuid(), SudoUID: os.Getenv("SUDO_UID")}
	os.Clearenv()
	_ = os.Setenv("PATH", securePath)
	syscall.Umask(0o022)
	if err := os.Chdir("/"); err != nil {
		fmt.Fprintf(os.Stderr, "banger-helper: %v\n", err)
		return ExitFailed
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The ip_forward record sits beside the lock, in the root-owned
	// directory lockFile checks.
	record, err := nat.ForwardRecordPath(filepath.Dir(paths.Lock))
	if err != nil {
		fmt.Fprintf(os.Stderr, "banger-helper: %v\n", err)
		return ExitFailed
	}
	deps := Deps{
		Registry: allocation.Registry{Dir: paths.UsersDir},
		Users:    osUsers{},
		Lock:     func() (func(), error) { return lockFile(paths.Lock) },
		Direct:   DirectDeps{Runner: system.Plain(), Logger: slog.New(slog.DiscardHandler), ForwardRecord: record},
		Stdout:   os.Stdout,
		Stderr:   os.Stderr,
	}
	return Run(ctx, inv, deps)
}

// osUsers reads the host's user database.
type osUsers struct{}

func (osUsers) LookupUID(uid int) (string, error) {
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return "", fmt.Errorf("no such user: %w", err)
	}
	return u.Username, nil
}

func (osUsers) LookupName(name string) (int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, fmt.Errorf("no such user: %w", err)
	}
	return strconv.Atoi(u.Uid)
}

// lockFile takes an exclusive lock on path, a root-only file in a
// root-owned directory (made 0755 when missing), so no user can hold it.
func lockFile(path string) (func(), error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("taking the helper lock: %w", err)
	}
	if err := allocation.CheckTrustedPath(dir, 0); err != nil {
		return nil, fmt.Errorf("taking the helper lock: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("taking the helper lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("taking the helper lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
