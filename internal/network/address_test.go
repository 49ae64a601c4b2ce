package network

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestAllocate(t *testing.T) {
	sub := netip.MustParsePrefix("10.213.0.0/24")
	tests := []struct {
		name   string
		subnet netip.Prefix
		taken  []netip.Addr
		want   string
	}{
		{"empty subnet gets first after gateway", sub, nil, "10.213.0.2"},
		{"skips taken", sub, addrs("10.213.0.2", "10.213.0.3"), "10.213.0.4"},
		{"fills holes", sub, addrs("10.213.0.2", "10.213.0.4"), "10.213.0.3"},
		{"ignores a taken gateway or outsider", sub, addrs("10.213.0.1", "192.0.2.2"), "10.213.0.2"},
		{"last usable host", netip.MustParsePrefix("10.9.0.0/29"), addrs("10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5"), "10.9.0.6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Allocate(tt.subnet, tt.taken)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.want {
				t.Errorf("Allocate = %v, want %s", got, tt.want)
			}
		})
	}
}

func TestAllocateFullNeverHandsOutBroadcast(t *testing.T) {
	sub := netip.MustParsePrefix("10.9.0.0/29") // .1 gateway, .2-.6 guests, .7 broadcast
	_, err := Allocate(sub, addrs("10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"))
	if !errors.Is(err, ErrSubnetFull) {
		t.Errorf("Allocate on a full /29: err = %v, want ErrSubnetFull", err)
	}
}

func TestAllocateIsStable(t *testing.T) {
	// Same inputs, same answer: the daemon relies on it to replay a create.
	sub := DefaultSubnet
	taken := addrs("10.213.0.2", "10.213.0.5")
	a, _ := Allocate(sub, taken)
	b, _ := Allocate(sub, taken)
	if a != b {
		t.Errorf("Allocate not stable: %v then %v", a, b)
	}
}

func TestValidateSubnet(t *testing.T) {
	for _, bad := range []string{"10.0.0.1/24", "10.0.0.0/30", "fd00::/64"} {
		if err := ValidateSubnet(netip.MustParsePrefix(bad)); err == nil {
			t.Errorf("ValidateSubnet(%s) accepted", bad)
		}
	}
	if err := ValidateSubnet(netip.Prefix{}); err == nil {
		t.Error("ValidateSubnet(zero) accepted")
	}
	if err := ValidateSubnet(DefaultSubnet); err != nil {
		t.Errorf("ValidateSubnet(default): %v", err)
	}
}

func TestGatewayAndBroadcast(t *testing.T) {
	p := netip.MustParsePrefix("10.213.4.0/22")
	if g := Gateway(p); g.String() != "10.213.4.1" {
		t.Errorf("Gateway = %v", g)
	}
	if b := Broadcast(p); b.String() != "10.213.7.255" {
		t.Errorf("Broadcast = %v", b)
	}
}

func TestTAPName(t *testing.T) {
	tests := map[string]string{
		"dev":          "bg-dev",
		"abc123def456": "bg-abc123def456",
	}
	for id, want := range tests {
		if got := TAPName(id); got != want {
			t.Errorf("TAPName(%q) = %q, want %q", id, got, want)
		}
	}
	// Long, uppercase or odd ids are hashed; ids sharing a long prefix (ULIDs
	// made in the same millisecond) must still get different names.
	seen := map[string]string{}
	for _, id := range []string{"01J9ZQ3V7K8M2N4P6R8T0V2X4Y", "01J9ZQ3V7K8M2N4P6R8T0V2X4Z", "Dev", "a/b", "", "abc123def4567"} {
		n := TAPName(id)
		if len(n) > 15 || len(n) <= len(TAPPrefix) || n[:3] != TAPPrefix {
			t.Errorf("TAPName(%q) = %q: not a valid tap name", id, n)
		}
		if other, ok := seen[n]; ok {
			t.Errorf("TAPName(%q) = TAPName(%q) = %q", id, other, n)
		}
		seen[n] = id
		if again := TAPName(id); again != n {
			t.Errorf("TAPName(%q) not deterministic: %q then %q", id, n, again)
		}
	}
}

func TestMACs(t *testing.T) {
	g, tp := GuestMAC("dev"), TAPMAC("dev")
	if g.String() == tp.String() {
		t.Fatalf("guest and tap MAC equal (%v): the bridge would keep the guest's frames", g)
	}
	for _, m := range append([][]byte{g, tp, bridgeMAC("banger0")}, GuestMAC("web")) {
		if len(m) != 6 || m[0]&0x02 == 0 || m[0]&0x01 != 0 {
			t.Errorf("MAC %x: want 6 bytes, locally administered, unicast", m)
		}
	}
	if GuestMAC("dev").String() != g.String() {
		t.Error("GuestMAC not deterministic")
	}
	if GuestMAC("web").String() == g.String() {
		t.Error("GuestMAC equal for different ids")
	}
}

func TestPermHint(t *testing.T) {
	err := permHint(fmt.Errorf("netlink: %w", unix.EPERM))
	if !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), "CAP_NET_ADMIN") {
		t.Errorf("permHint(EPERM) = %v, want the error kept and the fix named", err)
	}
	if err := permHint(unix.EEXIST); strings.Contains(err.Error(), "CAP_NET_ADMIN") {
		t.Errorf("permHint(EEXIST) = %v, want it unchanged", err)
	}
}

func TestTAPNameFor(t *testing.T) {
	if got := TAPNameFor("bg12-", "dev"); got != "bg12-dev" {
		t.Errorf("TAPNameFor(bg12-, dev) = %q", got)
	}
	for _, prefix := range []string{"bg-", "bg7-", "bg999-"} {
		for _, id := range []string{"01J9ZQ3V7K8M2N4P6R8T0V2X4Y", "x", "Upper", "a-very-long-vm-id"} {
			n := TAPNameFor(prefix, id)
			if err := ValidateTAPName(prefix, n); err != nil {
				t.Errorf("TAPNameFor(%q, %q) = %q, which ValidateTAPName refuses: %v", prefix, id, n, err)
			}
		}
	}
}

func TestValidateTAPPrefix(t *testing.T) {
	for _, good := range []string{"bg-", "bg1-", "bg999-", "tapx0-"} {
		if err := ValidateTAPPrefix(good); err != nil {
			t.Errorf("ValidateTAPPrefix(%q): %v", good, err)
		}
	}
	for _, bad := range []string{"", "-", "bg", "BG-", "bg_-", "bg/-", "bg123456-", "../-"} {
		if err := ValidateTAPPrefix(bad); err == nil {
			t.Errorf("ValidateTAPPrefix(%q) accepted", bad)
		}
	}
}

func TestValidateTAPName(t *testing.T) {
	for _, tt := range []struct {
		prefix, name string
		ok           bool
	}{
		{"bg1-", "bg1-dev", true},
		{"bg1-", "bg1-0123456789a", true},
		{"bg1-", "bg1-0123456789ab", false}, // 16 characters
		{"bg1-", "bg1-", false},
		{"bg1-", "bg2-dev", false},
		{"bg1-", "bg-dev", false},
		{"bg1-", "bg12-dev", false},
		{"bg1-", "bg1-../x", false},
		{"bg1-", "bg1-a b", false},
		{"bg1-", "bg1-DEV", false},
		{"bg1-", "eth0", false},
		{"bg-", "bg-dev", true},
	} {
		err := ValidateTAPName(tt.prefix, tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateTAPName(%q, %q) = %v, want ok=%v", tt.prefix, tt.name, err, tt.ok)
		}
	}
}

func TestValidateIfName(t *testing.T) {
	for _, good := range []string{"banger0", "banger12", "br_x.1", "a"} {
		if err := ValidateIfName(good); err != nil {
			t.Errorf("ValidateIfName(%q): %v", good, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "-j", "a b", "a/b", "eth0:1", "0123456789abcdef", "x\n", "a!"} {
		if err := ValidateIfName(bad); err == nil {
			t.Errorf("ValidateIfName(%q) accepted", bad)
		}
	}
}
