package nat

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Chains names the four chains that hold one allocation's rules. The zero
// value means the default names (DefaultChains); each user's allocation has
// its own (ChainsWithPrefix), so two users' rules never meet.
type Chains struct {
	// Forward is in the filter table, jumped to from FORWARD.
	Forward string `json:"forward"`
	// Input is in the filter table, jumped to from INPUT.
	Input string `json:"input"`
	// Post is in the nat table, jumped to from POSTROUTING.
	Post string `json:"post"`
	// Pre is in the nat table, jumped to from PREROUTING.
	Pre string `json:"pre"`
}

// MaxChainName is the longest iptables chain name (XT_EXTENSION_MAXNAMELEN
// minus the NUL).
const MaxChainName = 28

// DefaultChains are the chains of the default allocation (bangerd as root):
// BANGER-FWD, BANGER-IN, BANGER-POST and BANGER-PRE.
func DefaultChains() Chains { return ChainsWithPrefix("BANGER") }

// ChainsWithPrefix names the four chains prefix-FWD, prefix-IN, prefix-POST
// and prefix-PRE.
func ChainsWithPrefix(prefix string) Chains {
	return Chains{Forward: prefix + "-FWD", Input: prefix + "-IN", Post: prefix + "-POST", Pre: prefix + "-PRE"}
}

// IsZero reports whether no chain is named.
func (c Chains) IsZero() bool { return c == Chains{} }

// orDefault returns c, or DefaultChains when c is zero.
func (c Chains) orDefault() Chains {
	if c.IsZero() {
		return DefaultChains()
	}
	return c
}

// chainRef is one of an allocation's chains with its table and the built-in
// chain that jumps to it.
type chainRef struct{ table, name, from string }

// refs lists the chains in a fixed order: filter first, then nat.
func (c Chains) refs() []chainRef {
	c = c.orDefault()
	return []chainRef{
		{"filter", c.Forward, "FORWARD"},
		{"filter", c.Input, "INPUT"},
		{"nat", c.Post, "POSTROUTING"},
		{"nat", c.Pre, "PREROUTING"},
	}
}

// has reports whether name is one of the chains.
func (c Chains) has(name string) bool {
	return slices.ContainsFunc(c.refs(), func(r chainRef) bool { return r.name == name })
}

// reserved are names a chain of banger's must not take: built-in chains and
// targets, which a rule jumping to them would mean something else by.
var reserved = []string{"INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING",
	"ACCEPT", "DROP", "RETURN", "REJECT", "QUEUE", "NFQUEUE", "MASQUERADE", "DNAT", "SNAT",
	"REDIRECT", "LOG", "MARK", "CONNMARK", "TRACE", "CT", "NOTRACK", "AUDIT", "CHECKSUM", "TCPMSS"}

// Validate checks that the four names are distinct chain names iptables
// takes as one argument: 1 to 28 uppercase letters, digits, '-' and '_',
// starting with a letter, and none a built-in chain or target.
func (c Chains) Validate() error {
	seen := map[string]bool{}
	for _, r := range c.refs() {
		n := r.name
		switch {
		case n == "" || len(n) > MaxChainName:
			return fmt.Errorf("chain name %q: want 1 to %d characters", n, MaxChainName)
		case n[0] < 'A' || n[0] > 'Z':
			return fmt.Errorf("chain name %q: must start with an uppercase letter", n)
		case strings.Trim(n, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "":
			return fmt.Errorf("chain name %q: only uppercase letters, digits, '-' and '_'", n)
		case slices.Contains(reserved, n):
			return fmt.Errorf("chain name %q: a built-in chain or target", n)
		case seen[n]:
			return fmt.Errorf("chain name %q used twice", n)
		}
		seen[n] = true
	}
	return nil
}

// Desired returns the rules of each of cfg's chains, keyed by
// "table/chain", in iptables-save's canonical form. The DNS chains are empty
// when cfg.DNSPort is zero.
func Desired(cfg Config) map[string][]string {
	gw := gateway(cfg.Subnet)
	br := cfg.Bridge
	c := cfg.Chains.orDefault()
	fwd, in, post, pre := "filter/"+c.Forward, "filter/"+c.Input, "nat/"+c.Post, "nat/"+c.Pre
	out := map[string][]string{
		fwd: {
			"-i " + br + " -j ACCEPT",
			"-o " + br + " -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
		},
		in: nil,
		post: {
			"-s " + cfg.Subnet.String() + " ! -o " + br + " -j MASQUERADE",
		},
		pre: nil,
	}
	if cfg.DNSPort > 0 {
		for _, proto := range []string{"udp", "tcp"} {
			out[in] = append(out[in],
				fmt.Sprintf("-d %s/32 -i %s -p %s -m %s --dport %d -j ACCEPT", gw, br, proto, proto, cfg.DNSPort))
			out[pre] = append(out[pre],
				fmt.Sprintf("-d %s/32 -i %s -p %s -m %s --dport 53 -j DNAT --to-destination %s:%d", gw, br, proto, proto, gw, cfg.DNSPort))
		}
	}
	return out
}

func gateway(subnet netip.Prefix) netip.Addr { return subnet.Masked().Addr().Next() }

// Problems lists how rs differs from the rules cfg wants, one phrase each;
// none means the rules are up. ip_forward is checked elsewhere.
func Problems(rs *Ruleset, cfg Config) []string {
	var out []string
	want := Desired(cfg)
	for _, c := range cfg.Chains.refs() {
		t := rs.Table(c.table)
		key := c.table + "/" + c.name
		switch {
		case !t.HasChain(c.name):
			out = append(out, "chain "+key+" missing")
		case !slices.Equal(t.ChainRules(c.name), want[key]):
			out = append(out, "rules of "+key+" differ")
		}
		switch n := jumps(t, c.from, c.name); {
		case n == 0:
			out = append(out, fmt.Sprintf("jump %s/%s -> %s missing", c.table, c.from, c.name))
		case n > 1:
			out = append(out, fmt.Sprintf("jump %s/%s -> %s duplicated", c.table, c.from, c.name))
		}
	}
	return out
}

// jumps counts the plain jumps ("-j CHAIN") from a built-in chain to target.
func jumps(t *Table, from, target string) int {
	n := 0
	for _, s := range t.ChainRules(from) {
		if s == "-j "+target {
			n++
		}
	}
	return n
}

// UpScript returns the iptables-restore --noflush input that takes rs to
// the rules cfg wants, or "" when nothing is to be done. Chains whose rules
// differ are declared again, which makes restore flush them before refilling;
// missing jumps are inserted at the top of their built-in chain, ahead of
// any DROP of other tools; duplicated jumps are removed.
func UpScript(rs *Ruleset, cfg Config) string {
	want := Desired(cfg)
	var b strings.Builder
	for _, table := range []string{"filter", "nat"} {
		t := rs.Table(table)
		var body strings.Builder
		for _, c := range cfg.Chains.refs() {
			if c.table != table {
				continue
			}
			key := table + "/" + c.name
			if !t.HasChain(c.name) || !slices.Equal(t.ChainRules(c.name), want[key]) {
				fmt.Fprintf(&body, ":%s - [0:0]\n", c.name)
				for _, r := range want[key] {
					fmt.Fprintf(&body, "-A %s %s\n", c.name, r)
				}
			}
		}
		for _, c := range cfg.Chains.refs() {
			if c.table != table {
				continue
			}
			switch n := jumps(t, c.from, c.name); {
			case n == 0:
				fmt.Fprintf(&body, "-I %s 1 -j %s\n", c.from, c.name)
			case n > 1:
				for range n - 1 {
					fmt.Fprintf(&body, "-D %s -j %s\n", c.from, c.name)
				}
			}
		}
		if body.Len() > 0 {
			fmt.Fprintf(&b, "*%s\n%sCOMMIT\n", table, body.String())
		}
	}
	return b.String()
}

// DownScript returns the iptables-restore --noflush input that removes every
// rule jumping to one of cfg's chains, then flushes and deletes those
// chains, or "" when none of them is there. Other rules, other allocations'
// chains among them, are left alone.
func DownScript(rs *Ruleset, cfg Config) string {
	c := cfg.Chains
	var b strings.Builder
	for _, t := range rs.Tables {
		var body strings.Builder
		for _, r := range t.Rules {
			if !c.has(r.Chain) && c.has(jumpTarget(r.Spec)) {
				fmt.Fprintf(&body, "-D %s %s\n", r.Chain, r.Spec)
			}
		}
		var mine []string
		for _, ch := range t.Chains {
			if c.has(ch.Name) {
				mine = append(mine, ch.Name)
			}
		}
		for _, c := range mine {
			fmt.Fprintf(&body, "-F %s\n", c)
		}
		for _, c := range mine {
			fmt.Fprintf(&body, "-X %s\n", c)
		}
		if body.Len() > 0 {
			fmt.Fprintf(&b, "*%s\n%sCOMMIT\n", t.Name, body.String())
		}
	}
	return b.String()
}
