package image

import (
	"strings"
	"testing"
)

// FuzzParseAptProxy parses arbitrary apt proxy URLs. What it accepts is
// written into a file in the guest and into the build log, so it must be
// a plain SCHEME://HOST[:PORT]/ without characters a shell or apt treats
// specially, and parsing it again gives the same value.
func FuzzParseAptProxy(f *testing.F) {
	for _, s := range []string{"http://192.168.1.10:3142", "https://proxy.lan/", "HTTP://[fd00::1]:3142", "http://u:p@h", "http://h/path", "ftp://h",
		"http://h:0", "http://h:99999", "http://[fe80::1%eth0]:1", "http://1.2.3", "http://h;rm", "http://-h", "http://h:", "http://h:08"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseAptProxy(s)
		if err != nil {
			if !strings.Contains(err.Error(), "apt proxy") {
				t.Fatalf("error %q does not say it is about the apt proxy", err)
			}
			return
		}
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") || !strings.HasSuffix(u, "/") {
			t.Fatalf("ParseAptProxy(%q) = %q", s, u)
		}
		for _, r := range u {
			if r <= ' ' || r > '~' || strings.ContainsRune(`"'\`+"`$;{}<>|@?#", r) {
				t.Fatalf("ParseAptProxy(%q) = %q holds %q", s, u, r)
			}
		}
		again, err := ParseAptProxy(u)
		if err != nil || again != u {
			t.Fatalf("ParseAptProxy(%q) = %q, which parses again to %q, %v", s, u, again, err)
		}
	})
}
