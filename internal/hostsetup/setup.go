package hostsetup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"

	"banger/internal/allocation"
	"banger/internal/nat"
	"banger/internal/network"
	"banger/internal/privhelper"
	"banger/internal/system"
)

// Options say for whom to set up and where everything lives. Zero paths
// take the system's.
type Options struct {
	// User is the account to set up (the CLI passes --user or SUDO_USER).
	User string
	// Pool is where a new allocation comes from; zero is DefaultPool.
	Pool allocation.Pool
	// Registry is where allocations are recorded (DefaultDir, root).
	Registry allocation.Registry
	// HelperSource is the banger-helper binary to install, normally the
	// one beside the running banger.
	HelperSource string
	// HelperPath is where the helper is installed (privhelper.DefaultPath).
	HelperPath string
	// SudoersDir holds the sudoers rule ("/etc/sudoers.d").
	SudoersDir string
	// KVMDevice is "/dev/kvm", TunDevice "/dev/net/tun"; SubUIDFile and
	// SubGIDFile are "/etc/subuid" and "/etc/subgid".
	KVMDevice  string
	TunDevice  string
	SubUIDFile string
	SubGIDFile string
	// ForwardDir holds the ip_forward records (nat.DefaultForwardDir).
	ForwardDir string
	// RuntimeBase is where users' runtime directories live ("/run/user");
	// a user's bangerd keeps its sockets in RuntimeBase/UID/banger.
	RuntimeBase string
}

func (o *Options) fill() {
	if !o.Pool.Subnets.IsValid() {
		o.Pool = allocation.DefaultPool()
	}
	if o.HelperPath == "" {
		o.HelperPath = privhelper.DefaultPath
	}
	if o.SudoersDir == "" {
		o.SudoersDir = "/etc/sudoers.d"
	}
	if o.KVMDevice == "" {
		o.KVMDevice = "/dev/kvm"
	}
	if o.TunDevice == "" {
		o.TunDevice = "/dev/net/tun"
	}
	if o.SubUIDFile == "" {
		o.SubUIDFile = "/etc/subuid"
	}
	if o.SubGIDFile == "" {
		o.SubGIDFile = "/etc/subgid"
	}
	if o.ForwardDir == "" {
		o.ForwardDir = nat.DefaultForwardDir
	}
	if o.RuntimeBase == "" {
		o.RuntimeBase = "/run/user"
	}
}

// Account is a user as setup needs it.
type Account struct {
	Name     string
	UID, GID int
	// Home is the account's home directory.
	Home string
	// Groups are the gids of the user's groups, primary included.
	Groups []int
}

// Accounts looks up users and groups.
type Accounts interface {
	Lookup(name string) (Account, error)
	GroupName(gid int) (string, error)
}

// Deps are setup's host access. Zero values are the host's.
type Deps struct {
	// EUID must be 0.
	EUID int
	// Runner runs visudo, gpasswd and usermod (system.Plain()).
	Runner   system.Runner
	LookPath func(string) (string, error)
	Accounts Accounts
	// Links reads links and routes for the allocation and is passed to
	// the plumbing that Remove tears down with.
	Links network.Links
	// Ports lists ports in use (allocation.ListeningPorts).
	Ports func() ([]int, error)
	// Plumbing makes what Remove tears the network down with; nil means
	// privhelper.NewDirect with Links and Runner.
	Plumbing func(allocation.Allocation) (privhelper.Plumbing, error)
	// Processes lists the host's processes with their owners
	// (ListProcesses); teardown looks for a user's VMMs and bangerd.
	Processes func() ([]Process, error)
	// ReadFile reads /proc/sys/net/ipv4/ip_forward (os.ReadFile).
	ReadFile func(string) ([]byte, error)
	// Signal sends sig to a process (system.Signal).
	Signal func(pid int, startTime uint64, sig syscall.Signal) error
	// Out receives one line per change made.
	Out io.Writer
}

func (d *Deps) fill() {
	if d.Runner == nil {
		d.Runner = system.Plain()
	}
	if d.LookPath == nil {
		d.LookPath = system.LookPath
	}
	if d.Accounts == nil {
		d.Accounts = osAccounts{}
	}
	if d.Links == nil {
		d.Links = network.Netlink{}
	}
	if d.Ports == nil {
		d.Ports = allocation.ListeningPorts
	}
	if d.Processes == nil {
		d.Processes = ListProcesses
	}
	if d.ReadFile == nil {
		d.ReadFile = os.ReadFile
	}
	if d.Signal == nil {
		d.Signal = system.Signal
	}
	if d.Out == nil {
		d.Out = io.Discard
	}
}

func (d *Deps) plumbing(a allocation.Allocation) (privhelper.Plumbing, error) {
	if d.Plumbing != nil {
		return d.Plumbing(a)
	}
	run, _ := d.Runner.(system.InputRunner)
	if run == nil {
		run = system.Plain()
	}
	return privhelper.NewDirect(a, privhelper.DirectDeps{Links: d.Links, Runner: run, LookPath: d.LookPath})
}

func checkRoot(d Deps, opts Options) error {
	if d.EUID != 0 {
		return errors.New("system setup changes /etc and installs a helper that runs as root: run it with sudo, `sudo banger system setup`")
	}
	if opts.User == "" {
		return errors.New("system setup: name the user with --user NAME (under sudo, the invoking user is the default)")
	}
	if opts.User == "root" {
		return errors.New("system setup: root needs no setup; bangerd as root uses the default network (banger0, 10.213.0.0/24) directly. Name the user who will run banger with --user NAME")
	}
	return allocation.ValidateUser(opts.User)
}

func say(w io.Writer, format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }

// Setup does the one-time privileged set-up for opts.User and returns the
// allocation. It is idempotent: what is in place is checked and kept.
func Setup(ctx context.Context, opts Options, deps Deps) (allocation.Allocation, error) {
	opts.fill()
	deps.fill()
	if err := checkRoot(deps, opts); err != nil {
		return allocation.Allocation{}, err
	}
	acct, err := deps.Accounts.Lookup(opts.User)
	if err != nil {
		return allocation.Allocation{}, fmt.Errorf("system setup: %w", err)
	}
	unlock, err := opts.Registry.Lock()
	if err != nil {
		return allocation.Allocation{}, fmt.Errorf("system setup: %w", err)
	}
	defer unlock()

	a, err := ensureAllocation(opts, deps, acct)
	if err != nil {
		return allocation.Allocation{}, err
	}
	wrote, err := installHelper(opts.HelperSource, opts.HelperPath, opts.Registry.Owner)
	if err != nil {
		return a, fmt.Errorf("system setup: %w", err)
	}
	if wrote {
		say(deps.Out, "installed the helper %s (root-owned; the only program the sudoers rule allows)", opts.HelperPath)
	} else {
		say(deps.Out, "helper %s is up to date", opts.HelperPath)
	}
	rule, err := SudoersRule(acct.Name, acct.UID, opts.HelperPath)
	if err != nil {
		return a, fmt.Errorf("system setup: %w", err)
	}
	visudo, err := deps.LookPath("visudo")
	if err != nil {
		return a, fmt.Errorf("system setup: visudo not found: install sudo (`apt-get install sudo`): %w", err)
	}
	sudoers := filepath.Join(opts.SudoersDir, SudoersFileName(acct.Name))
	wrote, err = installSudoers(ctx, deps.Runner, visudo, opts.SudoersDir, SudoersFileName(acct.Name), rule)
	if err != nil {
		return a, fmt.Errorf("system setup: %w", err)
	}
	if wrote {
		say(deps.Out, "wrote %s: %s may run %s as root without a password, nothing else", sudoers, acct.Name, opts.HelperPath)
	} else {
		say(deps.Out, "sudoers rule %s is in place", sudoers)
	}
	granted := a.Granted
	if err := ensureKVM(ctx, opts, deps, acct, &granted); err != nil {
		return a, err
	}
	if err := ensureSubIDs(ctx, opts, deps, acct, &granted); err != nil {
		return a, err
	}
	if err := ensureTun(opts, deps); err != nil {
		return a, err
	}
	if !slices.Equal(granted.Groups, a.Granted.Groups) || granted.SubIDs != a.Granted.SubIDs {
		a.Granted = granted
		if err := opts.Registry.Save(a); err != nil {
			return a, fmt.Errorf("system setup: %w", err)
		}
	}
	say(deps.Out, "done: %s can run banger without a password prompt", acct.Name)
	return a, nil
}

func ensureAllocation(opts Options, deps Deps, acct Account) (allocation.Allocation, error) {
	a, err := opts.Registry.Load(acct.Name)
	switch {
	case err == nil && a.UID == acct.UID:
		say(deps.Out, "allocation of %s kept: bridge %s, subnet %s, taps %s*, chains %s…, dns 127.0.0.1:%d and %s, zone %s",
			a.User, a.Bridge, a.Subnet, a.TAPPrefix, a.Chains.Forward, a.DNSPort, a.GuestDNS(), a.Zone)
		return a, nil
	case err == nil:
		say(deps.Out, "allocation of %s moved from uid %d to uid %d (the account was recreated)", a.User, a.UID, acct.UID)
		a.UID = acct.UID
		if err := opts.Registry.Save(a); err != nil {
			return a, fmt.Errorf("system setup: %w", err)
		}
		return a, nil
	case !errors.Is(err, allocation.ErrNotSetUp):
		return a, fmt.Errorf("system setup: %w", err)
	}
	taken, err := opts.Registry.List()
	if err != nil {
		return a, fmt.Errorf("system setup: %w", err)
	}
	host, err := allocation.HostFrom(deps.Links)
	if err != nil {
		return a, fmt.Errorf("system setup: %w", err)
	}
	if host.Ports, err = deps.Ports(); err != nil {
		return a, fmt.Errorf("system setup: %w", err)
	}
	a, err = allocation.Allocate(acct.Name, acct.UID, taken, host, opts.Pool)
	if err != nil {
		return a, fmt.Errorf("system setup: %w", err)
	}
	if err := opts.Registry.Save(a); err != nil {
		return a, fmt.Errorf("system setup: %w", err)
	}
	say(deps.Out, "allocated for %s: bridge %s, subnet %s, taps %s*, chains %s…, dns 127.0.0.1:%d and %s, zone %s (%s)",
		a.User, a.Bridge, a.Subnet, a.TAPPrefix, a.Chains.Forward, a.DNSPort, a.GuestDNS(), a.Zone, opts.Registry.Path(a.User))
	return a, nil
}

// ensureKVM adds the user to the group of the KVM device, so their VMMs
// can use it. A device owned by group root is reported, not changed.
func ensureKVM(ctx context.Context, opts Options, deps Deps, acct Account, g *allocation.Granted) error {
	st, err := os.Stat(opts.KVMDevice)
	if errors.Is(err, fs.ErrNotExist) {
		say(deps.Out, "no %s on this host: VMs will run under QEMU without KVM (slow)", opts.KVMDevice)
		return nil
	}
	if err != nil {
		return fmt.Errorf("system setup: %w", err)
	}
	gid := int(st.Sys().(*syscall.Stat_t).Gid)
	if gid == 0 {
		say(deps.Out, "%s belongs to group root; give it a kvm group (Debian's udev rules do) for %s to use it", opts.KVMDevice, acct.Name)
		return nil
	}
	group, err := deps.Accounts.GroupName(gid)
	if err != nil {
		return fmt.Errorf("system setup: group of %s: %w", opts.KVMDevice, err)
	}
	if slices.Contains(acct.Groups, gid) {
		say(deps.Out, "%s is in group %s, which may use %s", acct.Name, group, opts.KVMDevice)
		return nil
	}
	gpasswd, err := deps.LookPath("gpasswd")
	if err != nil {
		return fmt.Errorf("system setup: gpasswd not found to add %s to group %s; install passwd: %w", acct.Name, group, err)
	}
	if err := deps.Runner.Run(ctx, gpasswd, "-a", acct.Name, group); err != nil {
		return fmt.Errorf("system setup: adding %s to group %s: %w", acct.Name, group, err)
	}
	if !slices.Contains(g.Groups, group) {
		g.Groups = append(g.Groups, group)
	}
	say(deps.Out, "added %s to group %s for %s; it applies from %s's next login (or `newgrp %s`)", acct.Name, group, opts.KVMDevice, acct.Name, group)
	return nil
}

// ensureSubIDs gives the user subordinate uids and gids for an
// unprivileged image bootstrap (mmdebstrap --mode=unshare), unless they
// have a range already.
func ensureSubIDs(ctx context.Context, opts Options, deps Deps, acct Account, g *allocation.Granted) error {
	read := func(p string) ([]SubIDRange, error) {
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		r, err := ParseSubIDs(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		return r, nil
	}
	uids, err := read(opts.SubUIDFile)
	if err != nil {
		return fmt.Errorf("system setup: %w", err)
	}
	gids, err := read(opts.SubGIDFile)
	if err != nil {
		return fmt.Errorf("system setup: %w", err)
	}
	if _, err := deps.LookPath("newuidmap"); err != nil {
		say(deps.Out, "newuidmap is missing: install uidmap (`apt-get install uidmap`) for image bootstraps without root")
	}
	if HasSubIDs(uids, acct.Name, acct.UID) && HasSubIDs(gids, acct.Name, acct.UID) {
		say(deps.Out, "%s has subordinate uids and gids (for mmdebstrap --mode=unshare)", acct.Name)
		return nil
	}
	usermod, err := deps.LookPath("usermod")
	if err != nil {
		return fmt.Errorf("system setup: usermod not found to add subordinate ids; install passwd: %w", err)
	}
	start := FreeSubIDs(uids, gids)
	span := fmt.Sprintf("%d-%d", start, start+SubIDCount-1)
	if err := deps.Runner.Run(ctx, usermod, "--add-subuids", span, "--add-subgids", span, acct.Name); err != nil {
		return fmt.Errorf("system setup: adding subordinate ids %s for %s: %w", span, acct.Name, err)
	}
	g.SubIDs = fmt.Sprintf("%d:%d", start, SubIDCount)
	say(deps.Out, "added subordinate uids and gids %s for %s (mmdebstrap --mode=unshare)", span, acct.Name)
	return nil
}

// ensureTun makes the TUN/TAP device readable and writable by everyone, as
// Debian's udev rules do, so a VMM running as the user can open the TAP the
// helper made for it. The kernel still lets a user attach only to TAPs
// they own, and creating one needs CAP_NET_ADMIN. The mode is not undone
// by --remove: it is the distribution's default.
func ensureTun(opts Options, deps Deps) error {
	st, err := os.Stat(opts.TunDevice)
	if errors.Is(err, fs.ErrNotExist) {
		say(deps.Out, "no %s: load the tun module (`modprobe tun`) before starting VMs", opts.TunDevice)
		return nil
	}
	if err != nil {
		return fmt.Errorf("system setup: %w", err)
	}
	if st.Mode()&fs.ModeCharDevice == 0 {
		return fmt.Errorf("system setup: %s is not a character device", opts.TunDevice)
	}
	if st.Mode().Perm()&0o666 == 0o666 {
		return nil
	}
	if err := os.Chmod(opts.TunDevice, 0o666); err != nil {
		return fmt.Errorf("system setup: making %s usable by VMMs running as users: %w", opts.TunDevice, err)
	}
	say(deps.Out, "made %s mode 0666 (it was %04o), as Debian's udev does: a user still opens only TAPs they own", opts.TunDevice, st.Mode().Perm())
	return nil
}

// osAccounts reads the host's user database.
type osAccounts struct{}

func (osAccounts) Lookup(name string) (Account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return Account{}, fmt.Errorf("looking up user %s: %w", name, err)
	}
	a := Account{Name: u.Username, Home: u.HomeDir}
	if a.UID, err = strconv.Atoi(u.Uid); err != nil {
		return Account{}, fmt.Errorf("looking up user %s: uid %q", name, u.Uid)
	}
	if a.GID, err = strconv.Atoi(u.Gid); err != nil {
		return Account{}, fmt.Errorf("looking up user %s: gid %q", name, u.Gid)
	}
	ids, err := u.GroupIds()
	if err != nil {
		return Account{}, fmt.Errorf("looking up the groups of %s: %w", name, err)
	}
	for _, s := range ids {
		if g, err := strconv.Atoi(s); err == nil {
			a.Groups = append(a.Groups, g)
		}
	}
	return a, nil
}

func (osAccounts) GroupName(gid int) (string, error) {
	g, err := user.LookupGroupId(strconv.Itoa(gid))
	if err != nil {
		return "", fmt.Errorf("looking up group %d: %w", gid, err)
	}
	return g.Name, nil
}
