package runtimebundle

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDocsRepeatHints(t *testing.T) {
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", p))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(strings.Fields(string(b)), " ") // line breaks do not matter
	}
	doc := read("docs/runtime-bundle.md")
	manifest := read(ManifestFile)
	if !strings.Contains(doc, NoBundleHint) {
		t.Errorf("docs/runtime-bundle.md does not repeat the no-bundle hint %q", NoBundleHint)
	}
	for _, p := range DocPhrases() {
		if !strings.Contains(doc, p) {
			t.Errorf("docs/runtime-bundle.md lacks %q", p)
		}
		if !strings.Contains(manifest, p) && p != "banger runtime install --manifest" {
			t.Errorf("%s lacks %q", ManifestFile, p)
		}
		if !strings.Contains(NoURLHint+" "+NoBundleHint, p) && p != "banger runtime verify" {
			t.Errorf("error hints lack %q", p)
		}
	}
}
