package allocation

import (
	"strings"
	"testing"

	"banger/internal/config"
)

func loaded(t *testing.T, set map[string]string) *config.Loaded {
	t.Helper()
	l, err := config.Load(config.Paths{ConfigFile: t.TempDir() + "/none.toml"})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range set {
		if err := l.Set(k, v, config.SourceEnv); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func TestForConfigGivesRootItsConfiguredNetwork(t *testing.T) {
	cfg := loaded(t, map[string]string{"bridge": "bgtest0", "subnet": "10.77.0.0/24", "dns_guest_port": "42555"})
	a, err := Registry{Dir: t.TempDir()}.ForConfig(cfg, "root", 0)
	if err != nil {
		t.Fatal(err)
	}
	if a.Bridge != "bgtest0" || a.Subnet.String() != "10.77.0.0/24" || a.GuestDNSPort != 42555 || a.Zone != DefaultZone {
		t.Errorf("root's allocation = %+v", a)
	}
	if _, err := (Registry{Dir: t.TempDir()}).ForConfig(loaded(t, map[string]string{"bridge": "eth0 bad"}), "root", 0); err == nil {
		t.Error("a malformed bridge name was accepted for root")
	}
}

func TestForConfigRefusesAUsersOverrides(t *testing.T) {
	_, err := Registry{Dir: t.TempDir()}.ForConfig(loaded(t, nil), "alice", 1001)
	if err == nil || !strings.Contains(err.Error(), "sudo banger system setup") {
		t.Errorf("a user without a record: %v", err)
	}
}
