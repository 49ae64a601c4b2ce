package bootstrap

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A dpkg status excerpt with a multi-line field, a removed package whose
// config files remain, and unsorted stanzas.
const sampleStatus = `Package: openssh-server
Status: install ok installed
Priority: optional
Architecture: amd64
Version: 1:9.2p1-2+deb12u5
Description: secure shell (SSH) server
 This is the portable version of OpenSSH.
 .
 More text.

Package: busybox
Status: deinstall ok config-files
Architecture: amd64
Version: 1:1.35.0-4

Package: base-files
Essential: yes
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u10

Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u10
`

func TestParseDpkgStatus(t *testing.T) {
	got, err := ParseDpkgStatus([]byte(sampleStatus))
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{
		{"base-files", "12.4+deb12u10", "amd64"},
		{"libc6", "2.36-9+deb12u10", "amd64"},
		{"openssh-server", "1:9.2p1-2+deb12u5", "amd64"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
	if _, err := ParseDpkgStatus([]byte("Package: x\nno colon here\n")); err == nil {
		t.Error("malformed status accepted")
	}
}

func TestManifestRoundTripAndHash(t *testing.T) {
	pkgs, _ := ParseDpkgStatus([]byte(sampleStatus))
	text := RenderManifest([]Package{pkgs[2], pkgs[0], pkgs[1]})
	want := "base-files 12.4+deb12u10 amd64\nlibc6 2.36-9+deb12u10 amd64\nopenssh-server 1:9.2p1-2+deb12u5 amd64\n"
	if string(text) != want {
		t.Errorf("RenderManifest =\n%s\nwant\n%s", text, want)
	}
	back, err := ParseManifest(text)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(pkgs, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	// sha256 of the exact text above, computed with sha256sum.
	if got := SHA256Hex(text); got != "d5c183399a094070ef37ae2fc05877f6e0a9c513a780ad0c7f857a8cab76a6b4" {
		t.Errorf("SHA256Hex = %s", got)
	}
	if SHA256Hex(text) == SHA256Hex(append(text, '\n')) {
		t.Error("hash ignores content")
	}
	if _, err := ParseManifest([]byte("only-two fields\n")); err == nil {
		t.Error("malformed manifest accepted")
	}
}
