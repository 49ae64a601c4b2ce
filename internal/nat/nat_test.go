package nat

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func newFakeNAT(t *testing.T, fw *FakeFirewall, cfg Config) *NAT {
	t.Helper()
	n, err := New(cfg, Deps{Runner: fw, LookPath: fw.LookPath, ReadFile: fw.ReadFile})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func dockerFirewall(t *testing.T, b Backend) *FakeFirewall {
	t.Helper()
	fw := NewFakeFirewall(b)
	data, err := os.ReadFile("testdata/docker-" + string(b) + ".save")
	if err != nil {
		t.Fatal(err)
	}
	if err := fw.Seed(b, string(data)); err != nil {
		t.Fatal(err)
	}
	return fw
}

func TestUpDownRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, b := range []Backend{NFT, Legacy} {
		t.Run(string(b), func(t *testing.T) {
			fw := dockerFirewall(t, b)
			before := fw.Rules(b)
			n := newFakeNAT(t, fw, sampleCfg)

			st, err := n.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Up() || st.Present || st.Backend != b {
				t.Errorf("status before up = %+v", st)
			}
			if s := st.String(); !strings.HasPrefix(s, "down (iptables "+string(b)+"): chain filter/BANGER-FWD missing;") || !strings.HasSuffix(s, "; net.ipv4.ip_forward is 0") {
				t.Errorf("status string before up = %q", s)
			}
			if err := n.Up(ctx); err != nil {
				t.Fatal(err)
			}
			if !fw.IPForward() {
				t.Error("ip_forward not enabled")
			}
			want := readSample(t, "docker-banger-"+string(b)+".save").Render()
			if diff := cmp.Diff(want, fw.Rules(b)); diff != "" {
				t.Errorf("rules after up (-want +got):\n%s", diff)
			}
			if st, err := n.Status(ctx); err != nil || !st.Up() || !st.Present || st.String() != "up (iptables "+string(b)+")" {
				t.Errorf("status after up = %+v (%s), %v", st, st, err)
			}

			// A second Up only reads.
			calls := len(fw.Calls())
			if err := n.Up(ctx); err != nil {
				t.Fatal(err)
			}
			if extra := fw.Calls()[calls:]; len(extra) != 1 || !strings.HasSuffix(extra[0], "-save") {
				t.Errorf("second up ran %q, want one save", extra)
			}

			for range 2 {
				if err := n.Down(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(before, fw.Rules(b)); diff != "" {
				t.Errorf("rules after down (-want +got):\n%s", diff)
			}
			if !fw.IPForward() {
				t.Error("down turned ip_forward off; other software may need it")
			}
			other := Legacy
			if b == Legacy {
				other = NFT
			}
			if diff := cmp.Diff(NewFakeFirewall(b).Rules(other), fw.Rules(other)); diff != "" {
				t.Errorf("the other backend was touched (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUpRepairs(t *testing.T) {
	ctx := context.Background()
	fw := NewFakeFirewall(NFT)
	n := newFakeNAT(t, fw, sampleCfg)
	if err := n.Up(ctx); err != nil {
		t.Fatal(err)
	}
	want := fw.Rules(NFT)
	// Someone deletes a jump, duplicates another and edits a rule.
	if err := fw.Seed(NFT, "*filter\n-D FORWARD -j BANGER-FWD\n-A INPUT -j BANGER-IN\nCOMMIT\n*nat\n-A BANGER-POST -j ACCEPT\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	st, err := n.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantProblems := []string{"jump filter/FORWARD -> BANGER-FWD missing", "jump filter/INPUT -> BANGER-IN duplicated", "rules of nat/BANGER-POST differ"}
	if diff := cmp.Diff(wantProblems, st.Problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if err := n.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, fw.Rules(NFT)); diff != "" {
		t.Errorf("rules after repair (-want +got):\n%s", diff)
	}
}

func TestUpAfterConfigChange(t *testing.T) {
	ctx := context.Background()
	fw := NewFakeFirewall(NFT)
	if err := newFakeNAT(t, fw, sampleCfg).Up(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := sampleCfg
	cfg.Bridge, cfg.DNSPort = "br-test", 0
	n := newFakeNAT(t, fw, cfg)
	if err := n.Up(ctx); err != nil {
		t.Fatal(err)
	}
	got := fw.Rules(NFT)
	if strings.Contains(got, "banger0") || strings.Contains(got, "DNAT") || !strings.Contains(got, "! -o br-test -j MASQUERADE") {
		t.Errorf("rules after config change:\n%s", got)
	}
	if st, _ := n.Status(ctx); !st.Up() {
		t.Errorf("status after config change: %+v", st)
	}
}

func TestDetectBackend(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		def     Backend
		seed    map[Backend]string
		force   Backend
		want    Backend
		wantCmd string
	}{
		{name: "iptables says nft", def: NFT, want: NFT, wantCmd: "/usr/sbin/iptables-nft-save"},
		{name: "iptables says legacy", def: Legacy, want: Legacy},
		{name: "rules only in legacy", def: NFT, seed: map[Backend]string{Legacy: "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -i docker0 -j ACCEPT\nCOMMIT\n"}, want: Legacy},
		{name: "rules in both", def: NFT, seed: map[Backend]string{Legacy: "*filter\n-A FORWARD -j ACCEPT\nCOMMIT\n", NFT: "*filter\n-A FORWARD -j DROP\nCOMMIT\n"}, want: NFT},
		{name: "banger's chains win", def: NFT, seed: map[Backend]string{Legacy: "*nat\n:BANGER-POST - [0:0]\nCOMMIT\n", NFT: "*filter\n-A FORWARD -j DROP\nCOMMIT\n"}, want: Legacy},
		{name: "forced", def: NFT, force: Legacy, want: Legacy, wantCmd: "/usr/sbin/iptables-legacy-save"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fw := NewFakeFirewall(tt.def)
			for b, s := range tt.seed {
				if err := fw.Seed(b, s); err != nil {
					t.Fatal(err)
				}
			}
			cfg := sampleCfg
			cfg.Backend = tt.force
			st, err := newFakeNAT(t, fw, cfg).Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Backend != tt.want {
				t.Errorf("backend = %s, want %s (calls %q)", st.Backend, tt.want, fw.Calls())
			}
			if tt.wantCmd != "" && !slices.Contains(fw.Calls(), tt.wantCmd) {
				t.Errorf("calls %q lack %q", fw.Calls(), tt.wantCmd)
			}
		})
	}
}

func TestDetectWithoutIptables(t *testing.T) {
	fw := NewFakeFirewall(NFT)
	n, err := New(sampleCfg, Deps{Runner: fw, ReadFile: fw.ReadFile, LookPath: func(string) (string, error) { return "", errors.New("not found") }})
	if err != nil {
		t.Fatal(err)
	}
	err = n.Up(context.Background())
	if err == nil || !strings.Contains(err.Error(), "apt-get install iptables") {
		t.Errorf("Up without iptables: err = %v, want a hint to install it", err)
	}
}

func TestUpFailureNamesCommand(t *testing.T) {
	fw := NewFakeFirewall(NFT)
	fw.FailOn("/usr/sbin/iptables-nft-restore --noflush --wait 5", errors.New("exit status 4"))
	err := newFakeNAT(t, fw, sampleCfg).Up(context.Background())
	if err == nil || !strings.Contains(err.Error(), "bringing nat up: applying nft rules") {
		t.Errorf("Up with a failing restore: err = %v", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	fw := NewFakeFirewall(NFT)
	for _, cfg := range []Config{
		{DNSPort: 70000},
		{Backend: "bpf"},
		{Bridge: "bad name"},
	} {
		if _, err := New(cfg, Deps{Runner: fw}); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	if _, err := New(Config{}, Deps{}); err == nil {
		t.Error("New without a runner accepted")
	}
	n, err := New(Config{}, Deps{Runner: fw})
	if err != nil {
		t.Fatal(err)
	}
	if c := n.Config(); c.Bridge != "banger0" || c.Subnet.String() != "10.213.0.0/24" {
		t.Errorf("defaults = %+v", c)
	}
}

// TestRandomTransitions replays Up, Down and foreign changes (another tool
// adding rules, someone deleting one of banger's jumps) in random order and
// checks after each step that banger's rules are exactly there after Up,
// exactly gone after Down, and that foreign rules are never changed.
func TestRandomTransitions(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	fw := dockerFirewall(t, NFT)
	n := newFakeNAT(t, fw, sampleCfg)
	foreign := fw.Rules(NFT) // the rules that are not banger's, as they should be
	up := false
	for step := range 300 {
		var op string
		switch rng.IntN(4) {
		case 0:
			op = "up"
			must(t, n.Up(ctx))
			up = true
		case 1:
			op = "down"
			must(t, n.Down(ctx))
			up = false
		case 2:
			op = "foreign rule"
			rule := fmt.Sprintf("-A DOCKER -i docker%d -j RETURN", step)
			must(t, fw.Seed(NFT, "*nat\n"+rule+"\nCOMMIT\n"))
			rs, err := ParseSave([]byte(foreign))
			must(t, err)
			must(t, applyRestore(rs, "*nat\n"+rule+"\nCOMMIT\n"))
			foreign = rs.Render()
		case 3:
			op = "jump deleted"
			if up {
				must(t, fw.Seed(NFT, "*filter\n-D FORWARD -j BANGER-FWD\nCOMMIT\n"))
				must(t, n.Up(ctx)) // the daemon's reconcile repairs it
			}
		}
		rs, err := ParseSave([]byte(fw.Rules(NFT)))
		must(t, err)
		if up {
			if p := Problems(rs, sampleCfg); len(p) != 0 {
				t.Fatalf("step %d (%s): up but problems %q", step, op, p)
			}
			must(t, applyRestore(rs, DownScript(rs, sampleCfg)))
		}
		if diff := cmp.Diff(foreign, rs.Render()); diff != "" {
			t.Fatalf("step %d (%s): foreign rules changed (-want +got):\n%s", step, op, diff)
		}
	}
}
