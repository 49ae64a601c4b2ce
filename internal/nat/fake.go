package nat

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// FakeFirewall is a stateful stand-in for the host's iptables, for tests.
// It is a system.InputRunner that understands the commands NAT runs
// (iptables --version, iptables-{nft,legacy}-save, iptables-{nft,legacy}-
// restore --noflush, sysctl -w net.ipv4.ip_forward=1) and keeps one ruleset
// per backend, applying restore input the way iptables-legacy-restore does:
// each table commits at COMMIT, a bad line fails its table, deleting a
// missing rule or a chain in use fails. Pass its LookPath and ReadFile in
// Deps. It does not canonicalize rule specs as the real tools do; the host
// tests cover that.
type FakeFirewall struct {
	mu sync.Mutex
	// Default is the backend `iptables --version` reports.
	Default   Backend
	rulesets  map[Backend]*Ruleset
	ipForward bool
	calls     []string
	fail      map[string]error
}

// NewFakeFirewall returns a FakeFirewall with empty filter and nat tables in
// both backends, ip_forward off, and `iptables` reporting def.
func NewFakeFirewall(def Backend) *FakeFirewall {
	f := &FakeFirewall{Default: def, rulesets: map[Backend]*Ruleset{}, fail: map[string]error{}}
	for _, b := range []Backend{NFT, Legacy} {
		f.rulesets[b] = &Ruleset{Tables: []*Table{
			{Name: "filter", Chains: []Chain{{"INPUT", "ACCEPT"}, {"FORWARD", "ACCEPT"}, {"OUTPUT", "ACCEPT"}}},
			{Name: "nat", Chains: []Chain{{"PREROUTING", "ACCEPT"}, {"INPUT", "ACCEPT"}, {"OUTPUT", "ACCEPT"}, {"POSTROUTING", "ACCEPT"}}},
		}}
	}
	return f
}

// Seed applies restore-format lines to a backend directly, to set up rules
// of other software (say, Docker's FORWARD DROP). It fails the test's way:
// by returning the error.
func (f *FakeFirewall) Seed(b Backend, script string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return applyRestore(f.rulesets[b], script)
}

// Rules renders a backend's ruleset canonically (see Ruleset.Render).
func (f *FakeFirewall) Rules(b Backend) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rulesets[b].Render()
}

// IPForward reports the fake net.ipv4.ip_forward.
func (f *FakeFirewall) IPForward() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ipForward
}

// FailOn makes the command whose argv, joined by spaces, is cmd fail.
func (f *FakeFirewall) FailOn(cmd string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[cmd] = err
}

// Calls returns the commands run so far, each argv joined by spaces.
func (f *FakeFirewall) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// LookPath finds the programs a Debian host with the iptables package has.
func (f *FakeFirewall) LookPath(name string) (string, error) {
	switch name {
	case "iptables", "iptables-save", "iptables-restore", "sysctl",
		"iptables-nft-save", "iptables-nft-restore", "iptables-legacy-save", "iptables-legacy-restore":
		return "/usr/sbin/" + name, nil
	}
	return "", fmt.Errorf("finding %s: not found", name)
}

// ReadFile serves /proc/sys/net/ipv4/ip_forward.
func (f *FakeFirewall) ReadFile(path string) ([]byte, error) {
	if path != ipForwardPath {
		return nil, fmt.Errorf("fake firewall: reading %s: not modelled", path)
	}
	if f.IPForward() {
		return []byte("1\n"), nil
	}
	return []byte("0\n"), nil
}

// Run implements system.Runner.
func (f *FakeFirewall) Run(ctx context.Context, argv ...string) error {
	_, err := f.RunInput(ctx, nil, argv...)
	return err
}

// Output implements system.Runner.
func (f *FakeFirewall) Output(ctx context.Context, argv ...string) ([]byte, error) {
	return f.RunInput(ctx, nil, argv...)
}

// RunInput implements system.InputRunner.
func (f *FakeFirewall) RunInput(_ context.Context, in io.Reader, argv ...string) ([]byte, error) {
	var stdin []byte
	if in != nil {
		b, err := io.ReadAll(in)
		if err != nil {
			return nil, err
		}
		stdin = b
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	line := strings.Join(argv, " ")
	f.calls = append(f.calls, line)
	if err := f.fail[line]; err != nil {
		return nil, err
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("fake firewall: empty argv")
	}
	prog := filepath.Base(argv[0])
	backend := func(suffix string) Backend {
		switch strings.TrimSuffix(prog, suffix) {
		case "iptables-nft":
			return NFT
		case "iptables-legacy":
			return Legacy
		}
		return f.Default
	}
	switch {
	case prog == "iptables" && slices.Equal(argv[1:], []string{"--version"}):
		if f.Default == Legacy {
			return []byte("iptables v1.8.9 (legacy)\n"), nil
		}
		return []byte("iptables v1.8.9 (nf_tables)\n"), nil
	case strings.HasSuffix(prog, "-save") && len(argv) == 1:
		return []byte(saveFormat(f.rulesets[backend("-save")])), nil
	case strings.HasSuffix(prog, "-restore"):
		if !slices.Contains(argv, "--noflush") {
			return nil, fmt.Errorf("fake firewall: %s without --noflush is not modelled", line)
		}
		return nil, applyRestore(f.rulesets[backend("-restore")], string(stdin))
	case prog == "sysctl" && slices.Equal(argv[1:], []string{"-w", "net.ipv4.ip_forward=1"}):
		f.ipForward = true
		return []byte("net.ipv4.ip_forward = 1\n"), nil
	case prog == "sysctl" && slices.Equal(argv[1:], []string{"-w", "net.ipv4.ip_forward=0"}):
		f.ipForward = false
		return []byte("net.ipv4.ip_forward = 0\n"), nil
	}
	return nil, fmt.Errorf("fake firewall: %q not modelled", line)
}

// saveFormat writes a ruleset as iptables-legacy-save does: built-in chains
// in kernel order, then user chains by name, then the rules.
func saveFormat(rs *Ruleset) string {
	var b strings.Builder
	b.WriteString("# Generated by fake iptables-save\n")
	for _, t := range rs.Tables {
		fmt.Fprintf(&b, "*%s\n", t.Name)
		var user []Chain
		for _, c := range t.Chains {
			if c.Policy == "-" {
				user = append(user, c)
				continue
			}
			fmt.Fprintf(&b, ":%s %s [0:0]\n", c.Name, c.Policy)
		}
		slices.SortFunc(user, func(a, b Chain) int { return strings.Compare(a.Name, b.Name) })
		for _, c := range user {
			fmt.Fprintf(&b, ":%s - [0:0]\n", c.Name)
		}
		for _, r := range t.Rules {
			fmt.Fprintf(&b, "-A %s %s\n", r.Chain, r.Spec)
		}
		b.WriteString("COMMIT\n# Completed\n")
	}
	return b.String()
}

// targets are the built-in targets the fake accepts after -j.
var targets = []string{"ACCEPT", "DROP", "RETURN", "REJECT", "MASQUERADE", "DNAT", "SNAT", "REDIRECT", "LOG", "MARK"}

// applyRestore applies iptables-restore --noflush input to rs, table by table.
func applyRestore(rs *Ruleset, script string) error {
	var work *Table // copy of the table being changed
	for n, raw := range strings.Split(script, "\n") {
		line := strings.TrimSpace(raw)
		fail := func(format string, args ...any) error {
			return fmt.Errorf("iptables-restore: line %d failed (%q): %s", n+1, line, fmt.Sprintf(format, args...))
		}
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case strings.HasPrefix(line, "*"):
			orig := rs.Table(line[1:])
			if orig == nil {
				return fail("no table %s", line[1:])
			}
			work = &Table{Name: orig.Name, Chains: slices.Clone(orig.Chains), Rules: slices.Clone(orig.Rules)}
			continue
		case work == nil:
			return fail("outside a table")
		case line == "COMMIT":
			*rs.Table(work.Name) = *work
			work = nil
			continue
		}
		if err := applyLine(work, line); err != nil {
			return fail("%v", err)
		}
	}
	if work != nil {
		return fmt.Errorf("iptables-restore: COMMIT expected at end of input")
	}
	return nil
}

func applyLine(t *Table, line string) error {
	if strings.HasPrefix(line, ":") {
		f := strings.Fields(line[1:])
		if len(f) < 2 {
			return fmt.Errorf("bad chain line")
		}
		switch {
		case f[1] != "-":
			i := slices.IndexFunc(t.Chains, func(c Chain) bool { return c.Name == f[0] })
			if i < 0 || t.Chains[i].Policy == "-" {
				return fmt.Errorf("no built-in chain %s", f[0])
			}
			t.Chains[i].Policy = f[1]
		case t.HasChain(f[0]):
			flush(t, f[0]) // --noflush still flushes a user chain it declares
		default:
			t.Chains = append(t.Chains, Chain{Name: f[0], Policy: "-"})
		}
		return nil
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		return fmt.Errorf("bad command")
	}
	cmd, chain, rest := f[0], f[1], f[2:]
	if cmd != "-N" && !t.HasChain(chain) {
		return fmt.Errorf("no chain %s", chain)
	}
	checkTarget := func(spec string) error {
		if tg := jumpTarget(spec); tg != "" && !slices.Contains(targets, tg) && !t.HasChain(tg) {
			return fmt.Errorf("no chain/target %s", tg)
		}
		return nil
	}
	switch cmd {
	case "-A":
		spec := strings.Join(rest, " ")
		if err := checkTarget(spec); err != nil {
			return err
		}
		t.Rules = append(t.Rules, Rule{Chain: chain, Spec: spec})
	case "-I":
		pos := 1
		if len(rest) > 0 {
			if p, err := strconv.Atoi(rest[0]); err == nil {
				pos, rest = p, rest[1:]
			}
		}
		spec := strings.Join(rest, " ")
		if err := checkTarget(spec); err != nil {
			return err
		}
		insertRule(t, Rule{Chain: chain, Spec: spec}, pos)
	case "-D":
		spec := strings.Join(rest, " ")
		i := slices.IndexFunc(t.Rules, func(r Rule) bool { return r.Chain == chain && r.Spec == spec })
		if i < 0 {
			return fmt.Errorf("bad rule (does a matching rule exist in that chain?)")
		}
		t.Rules = slices.Delete(t.Rules, i, i+1)
	case "-F":
		flush(t, chain)
	case "-N":
		if t.HasChain(chain) {
			return fmt.Errorf("chain %s already exists", chain)
		}
		t.Chains = append(t.Chains, Chain{Name: chain, Policy: "-"})
	case "-X":
		i := slices.IndexFunc(t.Chains, func(c Chain) bool { return c.Name == chain })
		switch {
		case t.Chains[i].Policy != "-":
			return fmt.Errorf("cannot delete built-in chain %s", chain)
		case len(t.ChainRules(chain)) > 0:
			return fmt.Errorf("chain %s not empty", chain)
		case slices.ContainsFunc(t.Rules, func(r Rule) bool { return jumpTarget(r.Spec) == chain }):
			return fmt.Errorf("chain %s in use (device or resource busy)", chain)
		}
		t.Chains = slices.Delete(t.Chains, i, i+1)
	default:
		return fmt.Errorf("command %s not modelled", cmd)
	}
	return nil
}

func flush(t *Table, chain string) {
	t.Rules = slices.DeleteFunc(t.Rules, func(r Rule) bool { return r.Chain == chain })
}

// insertRule puts r at 1-based position pos within its chain.
func insertRule(t *Table, r Rule, pos int) {
	seen := 0
	for i, x := range t.Rules {
		if x.Chain == r.Chain {
			seen++
			if seen == pos {
				t.Rules = slices.Insert(t.Rules, i, r)
				return
			}
		}
	}
	t.Rules = append(t.Rules, r)
}
