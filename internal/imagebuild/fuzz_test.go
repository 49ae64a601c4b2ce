package imagebuild

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParsePackageFile parses arbitrary package files (`image build
// --packages FILE`). What it accepts is safe to hand to apt and to upload:
// names are Debian package names (never an option, never more than one
// word), local packages are clean absolute paths ending in .deb.
func FuzzParsePackageFile(f *testing.F) {
	for _, s := range []string{
		"curl\ngit # vcs\n\n# comment\nlibc6=2.36-9\n",
		"./local.deb\n/abs/other.deb ../up.deb\n",
		"-oAPT::Get::AllowUnauthenticated=true\n",
		"curl;rm\n",
		"Curl\n",
		"a\x00b\n",
		"curl curl curl\n",
		strings.Repeat("x", 70000),
		"pkg=1:2.0~rc1+dfsg-1\n",
		"name=\n",
	} {
		f.Add([]byte(s), "/home/u/img")
	}
	f.Add([]byte("rel.deb\n"), "")
	f.Fuzz(func(t *testing.T, data []byte, dir string) {
		pf, err := ParsePackageFile(data, dir, "packages.txt")
		if err != nil {
			if !strings.Contains(err.Error(), "packages.txt") {
				t.Fatalf("error %q does not name the package file", err)
			}
			return
		}
		if pf.SHA256 != SHA256Hex(data) {
			t.Fatalf("SHA256 %s is not the file's", pf.SHA256)
		}
		for _, n := range pf.Names {
			if !packageName.MatchString(n) || strings.HasPrefix(n, "-") || strings.ContainsAny(n, " \t\n\x00") {
				t.Fatalf("accepted package name %q", n)
			}
		}
		for _, d := range pf.Debs {
			if !filepath.IsAbs(d) || filepath.Clean(d) != d || !strings.HasSuffix(d, ".deb") || strings.ContainsAny(d, "\n\x00") {
				t.Fatalf("accepted local package %q", d)
			}
		}
	})
}

// FuzzParseCopy parses arbitrary --copy arguments: an accepted one has a
// source and an absolute, clean guest destination other than /.
func FuzzParseCopy(f *testing.F) {
	for _, s := range []string{"./etc:/etc/myapp", "a:b:/c", "C:/x:/y", ":/x", "x:/", "x:/../..", "x:/a/../../b", "noslash", "/only/abs"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCopy(s)
		if err != nil {
			if !strings.Contains(err.Error(), "--copy") {
				t.Fatalf("error %q does not name the flag", err)
			}
			return
		}
		if c.Src == "" || !strings.HasPrefix(c.Dest, "/") || c.Dest == "/" || filepath.Clean(c.Dest) != c.Dest {
			t.Fatalf("ParseCopy(%q) = %+v", s, c)
		}
	})
}
