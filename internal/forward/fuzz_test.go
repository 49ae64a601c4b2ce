package forward

import (
	"strings"
	"testing"
)

// FuzzParseSpec parses arbitrary forward specs (`vm forward`, `vm create
// -p`, stored forwards): an accepted spec has real ports, a valid address,
// and renders to a string that parses back to the same spec.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"8080:80", "0.0.0.0:5353:53/udp", "[::1]:8080:80", "localhost:1:65535/TCP", "8080:80/sctp",
		"::1:80:80", "[fe80::1%eth0]:80:80", "0:80", "65536:80", "a:b", "[::1]80:80", "1.2.3.4:80:80/", "/udp", "::ffff:1.2.3.4:1:1", "[::ffff:1.2.3.4]:1:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := ParseSpec(s)
		if err != nil {
			if !strings.Contains(err.Error(), "forward ") {
				t.Fatalf("error %q does not say it is about a forward", err)
			}
			return
		}
		if spec.HostPort == 0 || spec.GuestPort == 0 || !spec.HostAddr.IsValid() || (spec.Proto != TCP && spec.Proto != UDP) {
			t.Fatalf("ParseSpec(%q) = %+v", s, spec)
		}
		back, err := ParseSpec(spec.String())
		if err != nil {
			t.Fatalf("ParseSpec(%q).String() = %q does not parse back: %v", s, spec.String(), err)
		}
		if back != spec {
			t.Fatalf("ParseSpec(%q) = %+v, but its string %q parses to %+v", s, spec, spec.String(), back)
		}
		if err := spec.Validate(); err != nil {
			t.Fatalf("a parsed spec does not validate: %v", err)
		}
	})
}
