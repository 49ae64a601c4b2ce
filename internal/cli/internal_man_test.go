package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestManPagesCoverTheCommandTree(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SOURCE_DATE_EPOCH", "86400")
	if err := (&App{}).writeManPages(dir); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(filepath.Join(dir, "banger-vm-create.1"))
	if err != nil {
		t.Fatalf("no page for vm create: %v", err)
	}
	for _, want := range []string{`.TH "BANGER" "1" "Jan 1970"`, "banger vm create NAME", `\fB--cpus\fP`} {
		if !strings.Contains(string(page), want) {
			t.Errorf("banger-vm-create.1 lacks %q:\n%s", want, page)
		}
	}
	for _, name := range []string{"banger.1", "banger-completion-bash.1", "banger-system-teardown.1"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("no man page %s: %v", name, err)
		}
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, "banger-internal*")); len(matches) > 0 {
		t.Errorf("hidden commands got man pages: %v", matches)
	}
}
