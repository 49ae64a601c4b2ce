package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"banger/internal/runtimebundle"
)

// The runtime bundle's local-first flow is described in several places;
// the phrases users see in errors must read the same in each.
func TestRuntimeBundleDocsHelpAndErrorsAgree(t *testing.T) {
	norm := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	root := filepath.Join("..", "..")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "runtime-bundle.md"))
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string]string{"README.md": norm(string(readme)), "docs/runtime-bundle.md": norm(string(doc))}
	if _, err := exec.LookPath("make"); err == nil {
		out, err := exec.Command("make", "-s", "-C", root, "help").CombinedOutput()
		if err != nil {
			t.Fatalf("make help: %v\n%s", err, out)
		}
		sources["make help"] = norm(string(out))
	}
	cmd := (&App{}).newRuntimeCommand()
	sources["banger runtime --help"] = norm(cmd.Long)
	for _, phrase := range runtimebundle.DocPhrases() {
		for where, text := range sources {
			if !strings.Contains(text, phrase) {
				t.Errorf("%s lacks %q", where, phrase)
			}
		}
	}
	hints := norm(runtimebundle.NoURLHint)
	for _, phrase := range []string{"make runtime-bundle", "banger runtime install --manifest build/runtime-bundle.toml"} {
		if !strings.Contains(hints, phrase) {
			t.Errorf("the no-URL error hint lacks %q", phrase)
		}
	}
}
