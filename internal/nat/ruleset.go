package nat

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// Ruleset is the content of iptables-save: tables of chains and rules.
type Ruleset struct {
	Tables []*Table
}

// Table is one table of a Ruleset.
type Table struct {
	Name   string
	Chains []Chain
	Rules  []Rule
}

// Chain is a chain declaration. Policy is "-" for user-defined chains.
type Chain struct {
	Name   string
	Policy string
}

// Rule is one rule: the chain it is in and its specification in
// iptables-save's canonical form, without the leading "-A CHAIN".
type Rule struct {
	Chain string
	Spec  string
}

// ParseSave parses iptables-save output. Comments and packet counters are
// dropped; a line that is none of table, chain, rule or COMMIT is an error.
func ParseSave(data []byte) (*Ruleset, error) {
	rs := &Ruleset{}
	var cur *Table
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "*"):
			cur = rs.table(line[1:], true)
		case cur == nil:
			return nil, fmt.Errorf("parsing iptables-save line %d %q: outside a table", n, line)
		case line == "COMMIT":
			cur = nil
		case strings.HasPrefix(line, ":"):
			f := strings.Fields(line[1:])
			if len(f) < 2 {
				return nil, fmt.Errorf("parsing iptables-save line %d %q: bad chain", n, line)
			}
			if !slices.ContainsFunc(cur.Chains, func(c Chain) bool { return c.Name == f[0] }) {
				cur.Chains = append(cur.Chains, Chain{Name: f[0], Policy: f[1]})
			}
		case strings.HasPrefix(line, "-A "):
			chain, spec, _ := strings.Cut(line[3:], " ")
			cur.Rules = append(cur.Rules, Rule{Chain: chain, Spec: strings.TrimSpace(spec)})
		default:
			return nil, fmt.Errorf("parsing iptables-save line %d %q: unknown line", n, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parsing iptables-save: %w", err)
	}
	return rs, nil
}

// table returns the named table, adding it when add is set, or nil.
func (rs *Ruleset) table(name string, add bool) *Table {
	for _, t := range rs.Tables {
		if t.Name == name {
			return t
		}
	}
	if !add {
		return nil
	}
	t := &Table{Name: name}
	rs.Tables = append(rs.Tables, t)
	return t
}

// Table returns the named table, or nil.
func (rs *Ruleset) Table(name string) *Table { return rs.table(name, false) }

// HasChain reports whether the table declares chain.
func (t *Table) HasChain(chain string) bool {
	return t != nil && slices.ContainsFunc(t.Chains, func(c Chain) bool { return c.Name == chain })
}

// ChainRules returns the specs of chain's rules, in order.
func (t *Table) ChainRules(chain string) []string {
	if t == nil {
		return nil
	}
	var out []string
	for _, r := range t.Rules {
		if r.Chain == chain {
			out = append(out, r.Spec)
		}
	}
	return out
}

// Render writes the ruleset in one canonical form for comparisons: tables
// by name, chains by name with their policies (no counters), rules in order.
func (rs *Ruleset) Render() string {
	tables := slices.Clone(rs.Tables)
	slices.SortFunc(tables, func(a, b *Table) int { return strings.Compare(a.Name, b.Name) })
	var b strings.Builder
	for _, t := range tables {
		fmt.Fprintf(&b, "*%s\n", t.Name)
		chains := slices.Clone(t.Chains)
		slices.SortFunc(chains, func(a, b Chain) int { return strings.Compare(a.Name, b.Name) })
		for _, c := range chains {
			fmt.Fprintf(&b, ":%s %s\n", c.Name, c.Policy)
		}
		// Order only matters within a chain; a rule of a chain that was
		// never declared would be a parse artefact and is kept at the end.
		for _, c := range chains {
			for _, spec := range t.ChainRules(c.Name) {
				fmt.Fprintf(&b, "-A %s %s\n", c.Name, spec)
			}
		}
		for _, r := range t.Rules {
			if !t.HasChain(r.Chain) {
				fmt.Fprintf(&b, "-A %s %s\n", r.Chain, r.Spec)
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}

// foreignRules counts the rules that are not in or jumping to one of c.
func (rs *Ruleset) foreignRules(c Chains) int {
	n := 0
	for _, t := range rs.Tables {
		for _, r := range t.Rules {
			if !c.has(r.Chain) && !c.has(jumpTarget(r.Spec)) {
				n++
			}
		}
	}
	return n
}

// hasChain reports whether any of c exists.
func (rs *Ruleset) hasChain(c Chains) bool {
	for _, t := range rs.Tables {
		for _, ch := range t.Chains {
			if c.has(ch.Name) {
				return true
			}
		}
	}
	return false
}

// jumpTarget returns the chain or target after "-j" (or "-g") in spec.
func jumpTarget(spec string) string {
	f := strings.Fields(spec)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "-j" || f[i] == "-g" {
			return f[i+1]
		}
	}
	return ""
}
