package imagebuild

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"banger/packages"
)

func TestParsePackageFile(t *testing.T) {
	data := []byte("# comment\ngit curl # trailing comment\n\n  docker.io\nlibfoo=1.2-3\ngit\n./local/tool_1.0_amd64.deb\n/abs/x.deb\n")
	pf, err := ParsePackageFile(data, "/home/u/proj", "/home/u/proj/packages.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := PackageFile{
		Source: "/home/u/proj/packages.txt", SHA256: SHA256Hex(data),
		Names: []string{"git", "curl", "docker.io", "libfoo=1.2-3"},
		Debs:  []string{"/home/u/proj/local/tool_1.0_amd64.deb", "/abs/x.deb"},
	}
	if diff := cmp.Diff(want, pf); diff != "" {
		t.Errorf("parsed (-want +got):\n%s", diff)
	}
}

func TestParsePackageFileRejects(t *testing.T) {
	for name, in := range map[string]struct{ data, dir string }{
		"upper case":            {"Git\n", ""},
		"shell":                 {"git; rm -rf /\n", ""},
		"relative deb, no dir":  {"x.deb\n", ""},
		"option":                {"-y\n", ""},
		"path that is not .deb": {"/etc/passwd\n", "/tmp"},
	} {
		if _, err := ParsePackageFile([]byte(in.data), in.dir, "f"); err == nil {
			t.Errorf("%s: %q accepted", name, in.data)
		}
	}
}

func TestDefaultManifestParsesAndIsHashed(t *testing.T) {
	pf := DefaultPackageFile()
	if pf.Source != DefaultSource || len(pf.Debs) != 0 {
		t.Errorf("default manifest: %+v", pf)
	}
	names := strings.Join(pf.Names, " ")
	for _, want := range []string{"docker.io", "git", "curl", "build-essential"} {
		if !strings.Contains(" "+names+" ", " "+want+" ") {
			t.Errorf("default manifest lacks %s", want)
		}
	}
	if pf.SHA256 != DefaultPackagesSHA256() || pf.SHA256 != SHA256Hex([]byte(string(packages.Default())+"\x00"+string(packages.DefaultSetup()))) {
		t.Error("default manifest hash differs between helpers, or does not cover the setup script")
	}
	if s := DefaultSetupScript(); s.Name != "default-setup.sh" || !strings.HasPrefix(s.Content, "#!/bin/sh\n") || !strings.Contains(s.Content, "/work/docker") {
		t.Errorf("default setup script: %+v", s)
	}
	if len(pf.SHA256) != 64 {
		t.Errorf("sha256 %q", pf.SHA256)
	}
}

func TestParseCopy(t *testing.T) {
	for in, want := range map[string]Copy{
		"./site:/srv/site":     {Src: "./site", Dest: "/srv/site"},
		"a:b:/etc/x/":          {Src: "a:b", Dest: "/etc/x"},
		"/h/f:/root/f":         {Src: "/h/f", Dest: "/root/f"},
		"dir:/opt/../opt/tool": {Src: "dir", Dest: "/opt/tool"},
	} {
		got, err := ParseCopy(in)
		if err != nil || got != want {
			t.Errorf("ParseCopy(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"nocolon", "src:relative", ":/x", "src:/"} {
		if _, err := ParseCopy(bad); err == nil {
			t.Errorf("ParseCopy(%q) accepted", bad)
		}
	}
}
