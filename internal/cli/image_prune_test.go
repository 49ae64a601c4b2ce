package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"banger/internal/api"
	"banger/internal/daemon/daemontest"
	"banger/internal/disk"
)

func TestImagePruneListsThenRemoves(t *testing.T) {
	inst := daemontest.Start(t, nil)
	inst.AddImage(t, "base")
	stale := filepath.Join(inst.Paths.DiskTemplates(), disk.WorkTemplate(5<<30))
	oldLog := filepath.Join(inst.Paths.StateDir, "builds", "failed-1.log")
	for _, p := range []string{stale, oldLog} {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, make([]byte, 4096), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-10 * 24 * time.Hour)
	os.Chtimes(oldLog, old, old)

	out, errOut, code := run(t, "image", "prune", "--dry-run", "--logs-older-than", "7")
	if code != 0 {
		t.Fatalf("prune --dry-run: code %d, stderr %s", code, errOut)
	}
	for _, want := range []string{"KIND", "template", stale, "log", oldLog, "build log older than 7 days", "would remove 2 items, ", "dry run: nothing was removed"} {
		if !strings.Contains(out, want) {
			t.Errorf("prune --dry-run output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(stale); err != nil {
		t.Fatalf("the dry run removed %s", stale)
	}

	out, _, code = run(t, "image", "prune", "-o", "json")
	var res api.PruneResult
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil {
		t.Fatalf("prune -o json: code %d, %v\n%s", code, err, out)
	}
	if len(res.Items) != 1 || res.Items[0].Path != stale || res.DryRun {
		t.Errorf("prune (logs kept 30 days) removed %+v, want only %s", res.Items, stale)
	}
	if _, err := os.Stat(oldLog); err != nil {
		t.Errorf("a 10-day-old log went with the default of 30 days")
	}

	if _, errOut, code := run(t, "image", "prune", "--logs-older-than", "0"); code == 0 || !strings.Contains(errOut, "1 day or more") {
		t.Errorf("--logs-older-than 0: code %d, stderr %q", code, errOut)
	}
	out, _, _ = run(t, "image", "prune")
	if !strings.Contains(out, "removed 0 items, 0B") {
		t.Errorf("a prune with nothing to do says %q", out)
	}
}
