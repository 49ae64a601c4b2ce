package disk

import (
	"os"
	"testing"
)

func TestReflinkSupportedAnswers(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReflinkSupported(dir); err != nil {
		t.Fatalf("probe in a temp dir: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("probe left files: %v", entries)
	}
	if _, err := ReflinkSupported(dir + "/missing"); err == nil {
		t.Error("probe of a missing dir: want error")
	}
}
