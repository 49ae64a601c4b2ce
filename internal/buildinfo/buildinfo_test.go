package buildinfo

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestExecutableIDChangesOnRebuild(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bangerd")
	if err := os.WriteFile(p, []byte("build one"), 0o755); err != nil {
		t.Fatal(err)
	}
	a, err := ExecutableID(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("build two!"), 0o755); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Second)
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
	b, _ := ExecutableID(p)
	if a == b {
		t.Errorf("ExecutableID unchanged after rebuild: %s", a)
	}
	if _, err := ExecutableID(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing executable: want error")
	}
}
