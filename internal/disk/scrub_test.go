package disk

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestScrubbedPathsCoverIdentityFiles(t *testing.T) {
	paths := strings.Join(scrubbedPaths(), " ")
	// Everything WriteIdentity puts into a VM except files it rewrites
	// anyway (hosts, resolv.conf) and machine-id, which is emptied.
	files, err := testIdentity(t).files()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		switch f.Path {
		case "/etc/hosts", "/etc/resolv.conf", "/etc/machine-id":
			continue
		}
		if !strings.Contains(paths, f.Path) {
			t.Errorf("scrub leaves %s, which WriteIdentity writes per VM", f.Path)
		}
	}
}

func TestScrubRemovesVMIdentity(t *testing.T) {
	img := testImage(t, "32M")
	m := realManager()
	ctx := context.Background()
	// Make it a VM's disk first, then add the history a session leaves.
	if err := m.WriteIdentity(ctx, img, testIdentity(t)); err != nil {
		t.Fatal(err)
	}
	hist := filepath.Join(t.TempDir(), "hist")
	os.WriteFile(hist, []byte("ls\n"), 0o600)
	if out, err := exec.Command(toolPath(t, "debugfs"), "-w", "-R", "write "+hist+" /root/.bash_history", img).CombinedOutput(); err != nil {
		t.Fatalf("debugfs write: %v\n%s", err, out)
	}

	if err := m.Scrub(ctx, img); err != nil {
		t.Fatal(err)
	}
	fsck(t, img)
	for _, p := range scrubbedPaths() {
		if _, ok := debugfsStat(t, img, p); ok {
			t.Errorf("%s survived the scrub", p)
		}
	}
	if ino, ok := debugfsStat(t, img, "/etc/machine-id"); !ok || ino.Size != 0 || ino.Type != "regular" || ino.Perm != 0o444 {
		t.Errorf("/etc/machine-id = %+v (exists %v), want an empty 0444 file", ino, ok)
	}
	if got := debugfsCat(t, img, "/usr/bin/tool"); got != "#!/bin/sh\n" {
		t.Errorf("unrelated file changed: %q", got)
	}
	// Scrubbing an already clean disk is fine.
	if err := m.Scrub(ctx, img); err != nil {
		t.Errorf("second scrub: %v", err)
	}
	if err := m.CheckClean(ctx, img); err != nil {
		t.Errorf("CheckClean after scrub: %v", err)
	}
}

func TestReadFileFromImage(t *testing.T) {
	img := testImage(t, "32M")
	m := realManager()
	ctx := context.Background()
	got, err := m.ReadFile(ctx, img, "/usr/bin/tool")
	if err != nil || string(got) != "#!/bin/sh\n" {
		t.Errorf("ReadFile = %q, %v", got, err)
	}
	// Binary content and a size larger than one pipe buffer survive.
	big := make([]byte, 300_000)
	for i := range big {
		big[i] = byte(i * 7)
	}
	p := filepath.Join(t.TempDir(), "big")
	os.WriteFile(p, big, 0o644)
	if out, err := exec.Command(toolPath(t, "debugfs"), "-w", "-R", "write "+p+" /big", img).CombinedOutput(); err != nil {
		t.Fatalf("debugfs write: %v\n%s", err, out)
	}
	if got, err := m.ReadFile(ctx, img, "/big"); err != nil || string(got) != string(big) {
		t.Errorf("ReadFile /big: %d bytes, %v", len(got), err)
	}
	if _, err := m.ReadFile(ctx, img, "/nope"); !errors.Is(err, ErrNoFile) {
		t.Errorf("missing file: %v, want ErrNoFile", err)
	}
	if _, err := m.ReadFile(ctx, img, "/etc"); err == nil {
		t.Error("reading a directory succeeded")
	}
}

func TestCheckCleanReportsDamage(t *testing.T) {
	img := testImage(t, "32M")
	m := realManager()
	if err := m.CheckClean(context.Background(), img); err != nil {
		t.Fatalf("fresh image: %v", err)
	}
	// Clear the root inode's mode: e2fsck -n must report it.
	if out, err := exec.Command(toolPath(t, "debugfs"), "-w", "-R", "sif / mode 0", img).CombinedOutput(); err != nil {
		t.Fatalf("debugfs: %v\n%s", err, out)
	}
	if err := m.CheckClean(context.Background(), img); err == nil {
		t.Error("damaged image passed the check")
	}
}
