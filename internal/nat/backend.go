package nat

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Backend is the kernel interface iptables drives: nf_tables or the legacy
// x_tables. Rules added through one are invisible to the other's tools, and
// a DROP in either drops the packet, so banger must use the host's.
type Backend string

// The backends.
const (
	NFT    Backend = "nft"
	Legacy Backend = "legacy"
)

// tools are the programs for one backend, as resolved on the host.
type tools struct {
	backend       Backend
	save, restore string
}

// ParseVersion reads the backend from `iptables --version` output, such as
// "iptables v1.8.9 (nf_tables)". Versions before 1.8 have no suffix and are
// legacy.
func ParseVersion(out string) (Backend, error) {
	s := strings.TrimSpace(out)
	switch {
	case !strings.HasPrefix(s, "iptables v"):
		return "", fmt.Errorf("parsing iptables version %q: not iptables", s)
	case strings.Contains(s, "(nf_tables)"):
		return NFT, nil
	case strings.Contains(s, "(legacy)"), !strings.Contains(s, "("):
		return Legacy, nil
	}
	return "", fmt.Errorf("parsing iptables version %q: unknown backend", s)
}

// detect chooses the backend and its programs. An explicit backend wins.
// Otherwise, where both iptables-nft and iptables-legacy exist (Debian,
// Ubuntu), a backend that already holds this allocation's chains is kept, so Down
// finds what an earlier Up made; failing that, a backend holding rules is
// preferred over an empty one (Docker's DROP may live in either); failing
// that, the one `iptables` itself uses.
func (n *NAT) detect(ctx context.Context) (tools, error) {
	find := func(b Backend) (tools, bool) {
		save, err1 := n.deps.LookPath("iptables-" + string(b) + "-save")
		restore, err2 := n.deps.LookPath("iptables-" + string(b) + "-restore")
		return tools{backend: b, save: save, restore: restore}, err1 == nil && err2 == nil
	}
	var plain Backend
	if ipt, err := n.deps.LookPath("iptables"); err == nil {
		out, err := n.run.Output(ctx, ipt, "--version")
		if err != nil {
			return tools{}, fmt.Errorf("detecting iptables backend: %w", err)
		}
		if plain, err = ParseVersion(string(out)); err != nil {
			return tools{}, fmt.Errorf("detecting iptables backend: %w", err)
		}
	}
	plainTools := func(b Backend) (tools, bool) {
		if plain != b {
			return tools{}, false
		}
		save, err1 := n.deps.LookPath("iptables-save")
		restore, err2 := n.deps.LookPath("iptables-restore")
		return tools{backend: b, save: save, restore: restore}, err1 == nil && err2 == nil
	}
	resolve := func(b Backend) (tools, bool) {
		if t, ok := find(b); ok {
			return t, true
		}
		return plainTools(b)
	}

	if n.cfg.Backend != "" {
		if t, ok := resolve(n.cfg.Backend); ok {
			return t, nil
		}
		return tools{}, fmt.Errorf("using iptables backend %s: iptables-%s-save or iptables-%s-restore not found; install them with `apt-get install iptables`", n.cfg.Backend, n.cfg.Backend, n.cfg.Backend)
	}
	nft, haveNFT := find(NFT)
	legacy, haveLegacy := find(Legacy)
	if haveNFT && haveLegacy {
		var errs []error
		rs := map[Backend]*Ruleset{}
		for _, t := range []tools{nft, legacy} {
			r, err := n.save(ctx, t)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			rs[t.backend] = r
		}
		if len(rs) == 0 {
			return tools{}, fmt.Errorf("detecting iptables backend: %w", errors.Join(errs...))
		}
		preferred, other := nft, legacy
		if plain == Legacy {
			preferred, other = legacy, nft
		}
		pr, or := rs[preferred.backend], rs[other.backend]
		switch {
		case pr == nil:
			return other, nil
		case or == nil:
			return preferred, nil
		case !pr.hasChain(n.cfg.Chains) && or.hasChain(n.cfg.Chains):
			return other, nil
		case pr.hasChain(n.cfg.Chains):
			return preferred, nil
		case pr.foreignRules(n.cfg.Chains) == 0 && or.foreignRules(n.cfg.Chains) > 0:
			return other, nil
		}
		return preferred, nil
	}
	for _, b := range []Backend{plain, NFT, Legacy} {
		if b == "" {
			continue
		}
		if t, ok := resolve(b); ok {
			return t, nil
		}
	}
	return tools{}, errors.New("detecting iptables backend: iptables-save and iptables-restore not found; install them with `apt-get install iptables`")
}
