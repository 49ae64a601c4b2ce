package vm

import (
	"math"
	"strings"
	"testing"
)

// FuzzParseSize checks that a size ParseSize accepts is a positive number
// of bytes that FormatSize renders back to (nearly) the same size, and that
// a refusal quotes the input.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"8G", "512M", "1.5GiB", "1073741824", "16 MB", " 2t ", "0", "-1G",
		"NaN", "Inf", "1e30T", "9223372036854775807", "0x10G", "G", "", "1.5", "8gb", "8GI"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			if !strings.Contains(err.Error(), "invalid size") {
				t.Fatalf("ParseSize(%q) error %q does not say what it judged", s, err)
			}
			return
		}
		if n <= 0 {
			t.Fatalf("ParseSize(%q) = %d with no error; a size is more than zero bytes", s, n)
		}
		back, err := ParseSize(FormatSize(n))
		if err != nil {
			t.Fatalf("ParseSize(FormatSize(%d) = %q): %v", n, FormatSize(n), err)
		}
		if d := math.Abs(float64(back-n)) / float64(n); d > 0.05 {
			t.Fatalf("ParseSize(%q) = %d, but FormatSize renders it as %q = %d", s, n, FormatSize(n), back)
		}
	})
}

// FuzzValidateName checks that every name ValidateName accepts is a DNS
// label (usable as a host name, a path element and a TAP name suffix) and
// that a suggested name is itself valid.
func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"dev", "a", "web-1", "-x", "x-", "Dev", "DEV-1", "a.b", "../etc", "a/b", "", strings.Repeat("a", 63), strings.Repeat("a", 64), "ǅ", "\x00", "İ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateName(s)
		if err != nil {
			msg := err.Error()
			if _, hint, ok := strings.Cut(msg, "; try "); ok {
				var suggested string
				if i := strings.LastIndex(hint, `"`); i > 0 && strings.HasPrefix(hint, `"`) {
					suggested = hint[1:i]
				}
				if ValidateName(suggested) != nil {
					t.Fatalf("ValidateName(%q) suggests %s, which is not valid", s, hint)
				}
			}
			return
		}
		if len(s) == 0 || len(s) > MaxNameLen || s[0] == '-' || s[len(s)-1] == '-' {
			t.Fatalf("ValidateName accepted %q, which is not a DNS label", s)
		}
		for _, r := range s {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				t.Fatalf("ValidateName accepted %q with %q", s, r)
			}
		}
	})
}
