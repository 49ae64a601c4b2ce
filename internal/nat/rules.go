package nat

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// banger's chains, each with its table and the built-in chain that jumps to it.
var chains = []struct{ table, name, from string }{
	{"filter", "BANGER-FWD", "FORWARD"},
	{"filter", "BANGER-IN", "INPUT"},
	{"nat", "BANGER-POST", "POSTROUTING"},
	{"nat", "BANGER-PRE", "PREROUTING"},
}

func isBangerChain(name string) bool {
	return slices.ContainsFunc(chains, func(c struct{ table, name, from string }) bool { return c.name == name })
}

// Desired returns the rules of each of banger's chains for cfg, keyed by
// "table/chain", in iptables-save's canonical form. The DNS chains are empty
// when cfg.DNSPort is zero.
func Desired(cfg Config) map[string][]string {
	gw := gateway(cfg.Subnet)
	br := cfg.Bridge
	out := map[string][]string{
		"filter/BANGER-FWD": {
			"-i " + br + " -j ACCEPT",
			"-o " + br + " -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
		},
		"filter/BANGER-IN": nil,
		"nat/BANGER-POST": {
			"-s " + cfg.Subnet.String() + " ! -o " + br + " -j MASQUERADE",
		},
		"nat/BANGER-PRE": nil,
	}
	if cfg.DNSPort > 0 {
		for _, proto := range []string{"udp", "tcp"} {
			out["filter/BANGER-IN"] = append(out["filter/BANGER-IN"],
				fmt.Sprintf("-d %s/32 -i %s -p %s -m %s --dport %d -j ACCEPT", gw, br, proto, proto, cfg.DNSPort))
			out["nat/BANGER-PRE"] = append(out["nat/BANGER-PRE"],
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
	for _, c := range chains {
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
		for _, c := range chains {
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
		for _, c := range chains {
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
// rule jumping to one of banger's chains, then flushes and deletes those
// chains, or "" when none of them is there. Other rules are left alone.
func DownScript(rs *Ruleset) string {
	var b strings.Builder
	for _, t := range rs.Tables {
		var body strings.Builder
		for _, r := range t.Rules {
			if !isBangerChain(r.Chain) && isBangerChain(jumpTarget(r.Spec)) {
				fmt.Fprintf(&body, "-D %s %s\n", r.Chain, r.Spec)
			}
		}
		var mine []string
		for _, c := range t.Chains {
			if isBangerChain(c.Name) {
				mine = append(mine, c.Name)
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
