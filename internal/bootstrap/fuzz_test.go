package bootstrap

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParseDpkgStatus parses arbitrary dpkg status files, as `image
// commit` reads them from a user's guest, and checks that the manifest
// rendered from the result reads back as the same packages.
func FuzzParseDpkgStatus(f *testing.F) {
	for _, s := range []string{
		"Package: bash\nStatus: install ok installed\nVersion: 5.2-1\nArchitecture: amd64\nDescription: shell\n multi-line\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\nArchitecture: all\n",
		"no colon here\n",
		"\n\n\n",
		"Package:\nStatus: install ok installed\n",
		"Package: x\r\nStatus: install ok installed\r\nVersion: 1\r\nArchitecture: all\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := ParseDpkgStatus(data)
		if err != nil {
			return
		}
		back, err := ParseManifest(RenderManifest(pkgs))
		if err != nil {
			t.Fatalf("the manifest of %q does not read back: %v", pkgs, err)
		}
		if diff := cmp.Diff(pkgs, back); len(pkgs) > 0 && diff != "" {
			t.Fatalf("manifest round trip changed the packages (-parsed +read back):\n%s", diff)
		}
	})
}
