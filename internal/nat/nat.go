package nat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"

	"banger/internal/network"
	"banger/internal/system"
)

// ipForwardPath is where the kernel exposes net.ipv4.ip_forward.
const ipForwardPath = "/proc/sys/net/ipv4/ip_forward"

// Config says what to forward and masquerade. Zero Bridge, Subnet and
// Chains take the defaults (network's, DefaultChains); DNSPort 0 means no
// DNS redirect; an empty Backend is detected.
type Config struct {
	Subnet netip.Prefix
	Bridge string
	// Chains names the chains the rules live in; NAT reads, writes and
	// deletes no other chain.
	Chains Chains
	// DNSPort is the daemon's DNS port on the gateway address. When set,
	// guests' queries to the gateway's port 53 (UDP and TCP) go there.
	DNSPort int
	// Backend forces iptables-nft or iptables-legacy.
	Backend Backend
}

// Deps are NAT's collaborators. Runner is required: system.Privileged() in
// production, a FakeFirewall in tests. Zero LookPath and ReadFile mean
// system.LookPath and os.ReadFile; a nil Logger discards.
type Deps struct {
	Runner   system.InputRunner
	LookPath func(string) (string, error)
	ReadFile func(string) ([]byte, error)
	Logger   *slog.Logger
	// ForwardRecord, when set, is the file where Up records the value
	// net.ipv4.ip_forward had before banger first turned it on, for
	// RestoreForward (ForwardRecordPath names the host's).
	ForwardRecord string
}

// Status says whether banger's rules are in place.
type Status struct {
	Backend   Backend
	IPForward bool
	// Present is set when any of the configured chains exists.
	Present bool
	// Problems lists what is missing or wrong; empty when up.
	Problems []string
}

// Up reports whether everything Up sets is in place.
func (s Status) Up() bool { return len(s.Problems) == 0 }

// String says in one line whether the rules are up, and if not, why.
func (s Status) String() string {
	if s.Up() {
		return fmt.Sprintf("up (iptables %s)", s.Backend)
	}
	return fmt.Sprintf("down (iptables %s): %s", s.Backend, strings.Join(s.Problems, "; "))
}

// NAT manages banger's firewall rules.
type NAT struct {
	cfg  Config
	deps Deps
	run  system.InputRunner
	log  *slog.Logger

	opMu  sync.Mutex // serializes Up and Down, so two Ups never both insert a jump
	mu    sync.Mutex
	tools tools // detected once
}

// New checks cfg, fills in defaults and returns a NAT. Nothing runs yet.
func New(cfg Config, deps Deps) (*NAT, error) {
	if deps.Runner == nil {
		return nil, errors.New("configuring nat: no command runner")
	}
	if cfg.Bridge == "" {
		cfg.Bridge = network.DefaultBridge
	}
	if !cfg.Subnet.IsValid() {
		cfg.Subnet = network.DefaultSubnet
	}
	if err := network.ValidateSubnet(cfg.Subnet); err != nil {
		return nil, fmt.Errorf("configuring nat: %w", err)
	}
	if err := network.ValidateIfName(cfg.Bridge); err != nil {
		return nil, fmt.Errorf("configuring nat: bridge: %w", err)
	}
	cfg.Chains = cfg.Chains.orDefault()
	if err := cfg.Chains.Validate(); err != nil {
		return nil, fmt.Errorf("configuring nat: %w", err)
	}
	if cfg.DNSPort < 0 || cfg.DNSPort > 65535 {
		return nil, fmt.Errorf("configuring nat: dns port %d out of range", cfg.DNSPort)
	}
	switch cfg.Backend {
	case "", NFT, Legacy:
	default:
		return nil, fmt.Errorf("configuring nat: unknown iptables backend %q, want %q or %q", cfg.Backend, NFT, Legacy)
	}
	if deps.LookPath == nil {
		deps.LookPath = system.LookPath
	}
	if deps.ReadFile == nil {
		deps.ReadFile = os.ReadFile
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	return &NAT{cfg: cfg, deps: deps, run: deps.Runner, log: deps.Logger}, nil
}

// Config returns the configuration in effect, defaults filled in.
func (n *NAT) Config() Config { return n.cfg }

// backendTools detects the backend on first use and remembers it.
func (n *NAT) backendTools(ctx context.Context) (tools, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.tools.save != "" {
		return n.tools, nil
	}
	t, err := n.detect(ctx)
	if err != nil {
		return tools{}, err
	}
	n.log.Debug("iptables backend", "backend", string(t.backend), "save", t.save)
	n.tools = t
	return t, nil
}

func (n *NAT) save(ctx context.Context, t tools) (*Ruleset, error) {
	out, err := n.run.Output(ctx, t.save)
	if err != nil {
		return nil, fmt.Errorf("reading %s rules: %w", t.backend, err)
	}
	rs, err := ParseSave(out)
	if err != nil {
		return nil, fmt.Errorf("reading %s rules: %w", t.backend, err)
	}
	return rs, nil
}

func (n *NAT) restore(ctx context.Context, t tools, script string) error {
	if _, err := n.run.RunInput(ctx, strings.NewReader(script), t.restore, "--noflush", "--wait", "5"); err != nil {
		return fmt.Errorf("applying %s rules: %w", t.backend, err)
	}
	return nil
}

func (n *NAT) ipForward() (bool, error) {
	b, err := n.deps.ReadFile(ipForwardPath)
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", ipForwardPath, err)
	}
	return string(bytes.TrimSpace(b)) == "1", nil
}

// Status reads the rules and ip_forward and says what, if anything, is
// missing. It changes nothing.
func (n *NAT) Status(ctx context.Context) (Status, error) {
	st, _, _, err := n.status(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("checking nat: %w", err)
	}
	return st, nil
}

func (n *NAT) status(ctx context.Context) (Status, *Ruleset, tools, error) {
	t, err := n.backendTools(ctx)
	if err != nil {
		return Status{}, nil, t, err
	}
	rs, err := n.save(ctx, t)
	if err != nil {
		return Status{}, nil, t, err
	}
	fwd, err := n.ipForward()
	if err != nil {
		return Status{}, nil, t, err
	}
	st := Status{Backend: t.backend, IPForward: fwd, Present: rs.hasChain(n.cfg.Chains), Problems: Problems(rs, n.cfg)}
	if !fwd {
		st.Problems = append(st.Problems, "net.ipv4.ip_forward is 0")
	}
	return st, rs, t, nil
}

// Up makes banger's rules exist and turns on net.ipv4.ip_forward. When all
// is in place it only reads; otherwise it applies what is missing in one
// iptables-restore. Running it again changes nothing.
func (n *NAT) Up(ctx context.Context) error {
	n.opMu.Lock()
	defer n.opMu.Unlock()
	st, rs, t, err := n.status(ctx)
	if err != nil {
		return fmt.Errorf("bringing nat up: %w", err)
	}
	if st.Up() {
		return nil
	}
	n.log.Info("bringing nat up", "backend", string(st.Backend), "subnet", n.cfg.Subnet.String(), "bridge", n.cfg.Bridge, "chains", n.cfg.Chains.Forward, "problems", st.Problems)
	if script := UpScript(rs, n.cfg); script != "" {
		if err := n.restore(ctx, t, script); err != nil {
			return fmt.Errorf("bringing nat up: %w", err)
		}
	}
	if !st.IPForward {
		if err := recordForward(n.deps.ForwardRecord); err != nil {
			return fmt.Errorf("bringing nat up: %w", err)
		}
		sysctl, err := n.deps.LookPath("sysctl")
		if err != nil {
			return errors.New("bringing nat up: sysctl not found to set net.ipv4.ip_forward=1; install it with `apt-get install procps`")
		}
		if err := n.run.Run(ctx, sysctl, "-w", "net.ipv4.ip_forward=1"); err != nil {
			return fmt.Errorf("bringing nat up: enabling ip forwarding: %w", err)
		}
	}
	return nil
}

// Down removes the configured chains and the jumps to them, and nothing else.
// net.ipv4.ip_forward stays as it is: other software may rely on it, and
// other users' networks may still need it (RestoreForward puts it back
// once no banger network is left). Down when nothing is there does nothing.
func (n *NAT) Down(ctx context.Context) error {
	n.opMu.Lock()
	defer n.opMu.Unlock()
	t, err := n.backendTools(ctx)
	if err != nil {
		return fmt.Errorf("bringing nat down: %w", err)
	}
	rs, err := n.save(ctx, t)
	if err != nil {
		return fmt.Errorf("bringing nat down: %w", err)
	}
	script := DownScript(rs, n.cfg)
	if script == "" {
		return nil
	}
	n.log.Info("bringing nat down", "backend", string(t.backend))
	if err := n.restore(ctx, t, script); err != nil {
		return fmt.Errorf("bringing nat down: %w", err)
	}
	return nil
}
