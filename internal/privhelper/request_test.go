package privhelper

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseAccepts(t *testing.T) {
	mac := net.HardwareAddr{0x06, 1, 2, 3, 4, 5}
	tests := []struct {
		args []string
		want Request
	}{
		{[]string{"bridge", "up"}, Request{Verb: BridgeUp}},
		{[]string{"bridge", "down"}, Request{Verb: BridgeDown}},
		{[]string{"nat", "up"}, Request{Verb: NATUp}},
		{[]string{"nat", "down"}, Request{Verb: NATDown}},
		{[]string{"dns", "up"}, Request{Verb: DNSUp}},
		{[]string{"dns", "down"}, Request{Verb: DNSDown}},
		{[]string{"tap", "add", "bg1-dev", "06:01:02:03:04:05"}, Request{Verb: TAPAdd, TAP: "bg1-dev", MAC: mac}},
		{[]string{"tap", "del", "bg1-dev"}, Request{Verb: TAPDel, TAP: "bg1-dev"}},
		{[]string{"--user", "alice", "nat", "up"}, Request{User: "alice", Verb: NATUp}},
		{[]string{"check"}, Request{Verb: CheckSetup}},
		{[]string{"--user", "alice", "check"}, Request{User: "alice", Verb: CheckSetup}},
	}
	for _, tt := range tests {
		got, err := Parse(tt.args)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.args, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Parse(%q) (-want +got):\n%s", tt.args, diff)
		}
		if back := got.Argv(); !cmp.Equal(back, tt.args) {
			t.Errorf("Parse(%q).Argv() = %q", tt.args, back)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"bridge"},
		{"check", "now"},
		{"bridge", "up", "eth0"}, // no argument may name the bridge
		{"bridge", "up", "--subnet", "10.0.0.0/8"}, // nor the subnet
		{"nat", "up", "-j", "ACCEPT"},              // nor rules
		{"nat", "up", "--chain", "FORWARD"},        // nor chains
		{"nat", "flush"},                           // unknown verb
		{"iptables", "-F"},                         // not a verb at all
		{"sh", "-c", "id"},                         // no shell
		{"tap", "add", "bg1-dev"},                  // MAC missing
		{"tap", "add", "bg1-dev", "06:01:02:03:04:05", "extra"},
		{"tap", "add", "../../etc/x", "06:01:02:03:04:05"},          // traversal
		{"tap", "add", "bg1-a b", "06:01:02:03:04:05"},              // space
		{"tap", "add", "bg1-a\nb", "06:01:02:03:04:05"},             // newline
		{"tap", "add", "bg1-0123456789abcdef", "06:01:02:03:04:05"}, // too long
		{"tap", "add", "-bg1", "06:01:02:03:04:05"},                 // option-like
		{"tap", "add", "bg1-dev", "01:00:5e:00:00:01"},              // multicast MAC
		{"tap", "add", "bg1-dev", "00:11:22:33:44:55"},              // globally administered MAC
		{"tap", "add", "bg1-dev", "0601.0203.0405"},                 // other MAC syntax
		{"tap", "add", "bg1-dev", "06:01:02:03:04:05:06:07"},        // EUI-64
		{"tap", "del"},
		{"tap", "del", "bg1-a", "bg1-b"},
		{"--user"},
		{"--user", "../root", "nat", "up"},
		{"--user", "alice"},
		{"nat", "up", "--user", "alice"}, // --user only first
		{"--user", "alice", "--user", "bob", "nat", "up"},
		{"bridge", "up", strings.Repeat("x", 100)},
		{"tap", "del", "bg1-\u00e9"},
	} {
		req, err := Parse(args)
		var r *RefusedError
		if !errors.As(err, &r) {
			t.Errorf("Parse(%q) = %+v, %v; want a refusal", args, req, err)
		}
	}
}
