package nat

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestChainsValidate(t *testing.T) {
	if err := DefaultChains().Validate(); err != nil {
		t.Errorf("default chains: %v", err)
	}
	if err := ChainsWithPrefix("BANGER999").Validate(); err != nil {
		t.Errorf("BANGER999 chains: %v", err)
	}
	good := ChainsWithPrefix("BANGER1")
	for name, c := range map[string]Chains{
		"option injection":  {Forward: "X -j ACCEPT", Input: good.Input, Post: good.Post, Pre: good.Pre},
		"leading dash":      {Forward: "-F", Input: good.Input, Post: good.Post, Pre: good.Pre},
		"built-in chain":    {Forward: "FORWARD", Input: good.Input, Post: good.Post, Pre: good.Pre},
		"built-in target":   {Forward: "ACCEPT", Input: good.Input, Post: good.Post, Pre: good.Pre},
		"too long":          ChainsWithPrefix("BANGER-0123456789012345678"),
		"lowercase":         ChainsWithPrefix("banger1"),
		"newline":           {Forward: "A\nCOMMIT", Input: good.Input, Post: good.Post, Pre: good.Pre},
		"duplicate":         {Forward: good.Forward, Input: good.Forward, Post: good.Post, Pre: good.Pre},
		"one empty":         {Forward: good.Forward, Input: "", Post: good.Post, Pre: good.Pre},
		"another's default": {Forward: good.Forward, Input: good.Input, Post: good.Post, Pre: "BANGER-PRE!"},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate(%+v) accepted", name, c)
		}
	}
}

func TestNewRejectsInjection(t *testing.T) {
	fw := NewFakeFirewall(NFT)
	for _, cfg := range []Config{
		{Bridge: "eth0 -j ACCEPT"},
		{Bridge: "-o"},
		{Chains: Chains{Forward: "X -j ACCEPT", Input: "A", Post: "B", Pre: "C"}},
	} {
		if _, err := New(cfg, Deps{Runner: fw}); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	if calls := fw.Calls(); len(calls) != 0 {
		t.Errorf("refused configs ran %q", calls)
	}
}

func userCfg(n int) Config {
	p := netip.MustParsePrefix([]string{"10.213.0.0/24", "10.213.1.0/24", "10.213.2.0/24"}[n])
	if n == 0 {
		return Config{Subnet: p, Bridge: "banger0", DNSPort: 42069}
	}
	return Config{Subnet: p, Bridge: []string{"", "banger1", "banger2"}[n], DNSPort: 42100 + n,
		Chains: ChainsWithPrefix([]string{"", "BANGER1", "BANGER2"}[n])}
}

// TestAllocationsCoexist brings up the default allocation and two users'
// rules in one firewall, in random order, and checks after every step that
// each allocation's rules are exactly there when up and gone when down,
// whatever the others did, and that Docker's rules never change.
func TestAllocationsCoexist(t *testing.T) {
	ctx := context.Background()
	fw := dockerFirewall(t, NFT)
	foreign := fw.Rules(NFT)
	var nats []*NAT
	for i := range 3 {
		nats = append(nats, newFakeNAT(t, fw, userCfg(i)))
	}
	up := make([]bool, 3)
	rng := rand.New(rand.NewPCG(5, 6))
	for step := range 200 {
		i := rng.IntN(3)
		if rng.IntN(2) == 0 {
			must(t, nats[i].Up(ctx))
			up[i] = true
		} else {
			must(t, nats[i].Down(ctx))
			up[i] = false
		}
		rs, err := ParseSave([]byte(fw.Rules(NFT)))
		must(t, err)
		for j := range 3 {
			cfg := nats[j].Config()
			problems := Problems(rs, cfg)
			if up[j] && len(problems) != 0 {
				t.Fatalf("step %d: allocation %d up but %q", step, j, problems)
			}
			if !up[j] && rs.hasChain(cfg.Chains) {
				t.Fatalf("step %d: allocation %d down but its chains are there:\n%s", step, j, fw.Rules(NFT))
			}
		}
		for j := range 3 {
			if up[j] {
				must(t, applyRestore(rs, DownScript(rs, nats[j].Config())))
			}
		}
		if diff := cmp.Diff(foreign, rs.Render()); diff != "" {
			t.Fatalf("step %d: foreign rules changed (-want +got):\n%s", step, diff)
		}
	}
}

func TestUserRulesNameOwnChains(t *testing.T) {
	got := Desired(userCfg(1))
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	for _, k := range keys {
		if !strings.Contains(k, "BANGER1-") {
			t.Errorf("desired chain %s is not allocation 1's", k)
		}
	}
	if r := got["nat/BANGER1-POST"]; len(r) != 1 || r[0] != "-s 10.213.1.0/24 ! -o banger1 -j MASQUERADE" {
		t.Errorf("BANGER1-POST = %q", r)
	}
}
