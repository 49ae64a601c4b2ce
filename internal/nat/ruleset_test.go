package nat

import (
	"net/netip"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The samples in testdata were captured from iptables 1.8.9 on Debian in a
// throwaway network namespace: Docker's usual rules, then the same with
// banger's rules (default subnet and bridge, DNS port 42069) added by Up.

func readSample(t *testing.T, name string) *Ruleset {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ParseSave(data)
	if err != nil {
		t.Fatalf("parsing %s: %v", name, err)
	}
	return rs
}

var sampleCfg = Config{
	Subnet:  netip.MustParsePrefix("10.213.0.0/24"),
	Bridge:  "banger0",
	DNSPort: 42069,
}

func TestParseSave(t *testing.T) {
	rs := readSample(t, "docker-nft.save")
	f := rs.Table("filter")
	if f == nil || rs.Table("nat") == nil || rs.Table("mangle") != nil {
		t.Fatalf("tables = %+v", rs.Tables)
	}
	want := []Chain{{"INPUT", "ACCEPT"}, {"FORWARD", "DROP"}, {"OUTPUT", "ACCEPT"}, {"DOCKER", "-"},
		{"DOCKER-ISOLATION-STAGE-1", "-"}, {"DOCKER-ISOLATION-STAGE-2", "-"}, {"DOCKER-USER", "-"}}
	if diff := cmp.Diff(want, f.Chains); diff != "" {
		t.Errorf("filter chains (-want +got):\n%s", diff)
	}
	if got := f.ChainRules("DOCKER-ISOLATION-STAGE-2"); !cmp.Equal(got, []string{"-o docker0 -j DROP", "-j RETURN"}) {
		t.Errorf("DOCKER-ISOLATION-STAGE-2 rules = %q", got)
	}
	if n := rs.foreignRules(DefaultChains()); n != 15 {
		t.Errorf("foreignRules = %d, want 15", n)
	}
}

func TestParseSaveBackendsAgree(t *testing.T) {
	// Both backends print banger's rules identically, so one set of desired
	// specs serves both; only the order of tables and comments differ.
	for _, pair := range [][2]string{{"docker-nft.save", "docker-legacy.save"}, {"docker-banger-nft.save", "docker-banger-legacy.save"}} {
		a, b := readSample(t, pair[0]), readSample(t, pair[1])
		if diff := cmp.Diff(a.Render(), b.Render()); diff != "" {
			t.Errorf("%s vs %s (-nft +legacy):\n%s", pair[0], pair[1], diff)
		}
	}
}

func TestParseSaveRejectsGarbage(t *testing.T) {
	for _, in := range []string{"-A FORWARD -j ACCEPT\n", "*filter\n:\nCOMMIT\n", "*filter\nbogus\nCOMMIT\n"} {
		if _, err := ParseSave([]byte(in)); err == nil {
			t.Errorf("ParseSave(%q) succeeded", in)
		}
	}
}

func TestProblems(t *testing.T) {
	for _, b := range []string{"nft", "legacy"} {
		if p := Problems(readSample(t, "docker-banger-"+b+".save"), sampleCfg); len(p) != 0 {
			t.Errorf("%s with banger's rules: problems %q, want none", b, p)
		}
		want := []string{
			"chain filter/BANGER-FWD missing", "jump filter/FORWARD -> BANGER-FWD missing",
			"chain filter/BANGER-IN missing", "jump filter/INPUT -> BANGER-IN missing",
			"chain nat/BANGER-POST missing", "jump nat/POSTROUTING -> BANGER-POST missing",
			"chain nat/BANGER-PRE missing", "jump nat/PREROUTING -> BANGER-PRE missing",
		}
		if diff := cmp.Diff(want, Problems(readSample(t, "docker-"+b+".save"), sampleCfg)); diff != "" {
			t.Errorf("%s without banger's rules (-want +got):\n%s", b, diff)
		}
	}
	other := sampleCfg
	other.Subnet = netip.MustParsePrefix("10.99.0.0/24")
	want := []string{"rules of filter/BANGER-IN differ", "rules of nat/BANGER-POST differ", "rules of nat/BANGER-PRE differ"}
	if diff := cmp.Diff(want, Problems(readSample(t, "docker-banger-nft.save"), other)); diff != "" {
		t.Errorf("another subnet (-want +got):\n%s", diff)
	}
}

func TestUpScriptFromScratch(t *testing.T) {
	got := UpScript(readSample(t, "docker-nft.save"), sampleCfg)
	want := `*filter
:BANGER-FWD - [0:0]
-A BANGER-FWD -i banger0 -j ACCEPT
-A BANGER-FWD -o banger0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
:BANGER-IN - [0:0]
-A BANGER-IN -d 10.213.0.1/32 -i banger0 -p udp -m udp --dport 42069 -j ACCEPT
-A BANGER-IN -d 10.213.0.1/32 -i banger0 -p tcp -m tcp --dport 42069 -j ACCEPT
-I FORWARD 1 -j BANGER-FWD
-I INPUT 1 -j BANGER-IN
COMMIT
*nat
:BANGER-POST - [0:0]
-A BANGER-POST -s 10.213.0.0/24 ! -o banger0 -j MASQUERADE
:BANGER-PRE - [0:0]
-A BANGER-PRE -d 10.213.0.1/32 -i banger0 -p udp -m udp --dport 53 -j DNAT --to-destination 10.213.0.1:42069
-A BANGER-PRE -d 10.213.0.1/32 -i banger0 -p tcp -m tcp --dport 53 -j DNAT --to-destination 10.213.0.1:42069
-I POSTROUTING 1 -j BANGER-POST
-I PREROUTING 1 -j BANGER-PRE
COMMIT
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("UpScript (-want +got):\n%s", diff)
	}
	if s := UpScript(readSample(t, "docker-banger-legacy.save"), sampleCfg); s != "" {
		t.Errorf("UpScript when up = %q, want empty", s)
	}
}

func TestUpScriptWithoutDNS(t *testing.T) {
	cfg := sampleCfg
	cfg.DNSPort = 0
	got := UpScript(readSample(t, "docker-banger-nft.save"), cfg)
	want := "*filter\n:BANGER-IN - [0:0]\nCOMMIT\n*nat\n:BANGER-PRE - [0:0]\nCOMMIT\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("UpScript dropping DNS (-want +got):\n%s", diff)
	}
}

func TestDownScript(t *testing.T) {
	got := DownScript(readSample(t, "docker-banger-legacy.save"), sampleCfg)
	want := `*filter
-D INPUT -j BANGER-IN
-D FORWARD -j BANGER-FWD
-F BANGER-FWD
-F BANGER-IN
-X BANGER-FWD
-X BANGER-IN
COMMIT
*nat
-D PREROUTING -j BANGER-PRE
-D POSTROUTING -j BANGER-POST
-F BANGER-POST
-F BANGER-PRE
-X BANGER-POST
-X BANGER-PRE
COMMIT
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DownScript (-want +got):\n%s", diff)
	}
	if s := DownScript(readSample(t, "docker-nft.save"), sampleCfg); s != "" {
		t.Errorf("DownScript with nothing of banger's = %q, want empty", s)
	}
}

func TestScriptsReplayOnSamples(t *testing.T) {
	// Applying Down to the captured "up" state gives the captured "before"
	// state, and Up to "before" gives "up": the fake's restore agrees with
	// what the real tools did.
	for _, b := range []string{"nft", "legacy"} {
		before, up := readSample(t, "docker-"+b+".save"), readSample(t, "docker-banger-"+b+".save")
		down := readSample(t, "docker-banger-"+b+".save")
		if err := applyRestore(down, DownScript(down, sampleCfg)); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(before.Render(), down.Render()); diff != "" {
			t.Errorf("%s: down (-want +got):\n%s", b, diff)
		}
		raised := readSample(t, "docker-"+b+".save")
		if err := applyRestore(raised, UpScript(raised, sampleCfg)); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(up.Render(), raised.Render()); diff != "" {
			t.Errorf("%s: up (-want +got):\n%s", b, diff)
		}
	}
}

func TestParseVersion(t *testing.T) {
	tests := map[string]Backend{
		"iptables v1.8.9 (nf_tables)\n": NFT,
		"iptables v1.8.7 (legacy)\n":    Legacy,
		"iptables v1.6.1\n":             Legacy,
	}
	for in, want := range tests {
		got, err := ParseVersion(in)
		if err != nil || got != want {
			t.Errorf("ParseVersion(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "nft v1.0.6", "iptables v1.9 (bpf)"} {
		if _, err := ParseVersion(in); err == nil {
			t.Errorf("ParseVersion(%q) succeeded", in)
		}
	}
}
