package bootstrap

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"banger/internal/system"
)

func TestDebugfsDevScript(t *testing.T) {
	got := debugfsDevScript([]devNode{
		{Name: "null", Mode: modeCharDev | 0o666, Major: 1, Minor: 3},
		{Name: "fd", Mode: modeSymlink | 0o777, Target: "/proc/self/fd"},
		{Name: "pts", Mode: modeDir | 0o755},
	})
	want := "cd /dev\n" +
		"mknod null c 1 3\n" +
		"sif null mode 020666\n" +
		"symlink fd /proc/self/fd\n" +
		"mkdir pts\n" +
		"sif pts mode 040755\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("script (-want +got):\n%s", diff)
	}
}

func TestParseDebugfsLs(t *testing.T) {
	// Captured from `debugfs -R 'ls -p /dev' rootfs.ext4` (e2fsprogs 1.47.0).
	sample := "/12/040755/0/0/.//\n/2/040755/0/0/..//\n/13/020666/0/0/null/0/\n" +
		"/15/120777/0/0/fd/13/\n/16/040755/0/0/pts//\n\n"
	got, err := parseDebugfsLs([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]lsEntry{
		".": {Mode: 0o40755}, "..": {Mode: 0o40755}, "null": {Mode: 0o20666}, "fd": {Mode: 0o120777}, "pts": {Mode: 0o40755},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	for name, bad := range map[string]string{
		"duplicate": sample + "/17/020666/0/0/null/0/\n",
		"not octal": "/13/02x666/0/0/null/0/\n",
		"short":     "/13/020666/0/null/0/\n",
		"banner":    "debugfs 1.47.0 (5-Feb-2023)\n",
	} {
		if _, err := parseDebugfsLs([]byte(bad)); err == nil {
			t.Errorf("%s: parsed without error", name)
		}
	}
}

func TestCheckDevNodes(t *testing.T) {
	full := map[string]lsEntry{}
	for _, n := range devNodes() {
		full[n.Name] = lsEntry{Mode: n.Mode}
	}
	if err := checkDevNodes(full); err != nil {
		t.Errorf("complete /dev: %v", err)
	}
	full["null"] = lsEntry{Mode: modeCharDev} // mknod without sif
	full["tty"] = lsEntry{Mode: modeCharDev | 0o666, UID: 1000}
	delete(full, "zero")
	err := checkDevNodes(full)
	for _, want := range []string{"/dev/null has mode 20000", "/dev/tty has mode 20666 owner 1000:0", "/dev/zero is missing"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestMissingDevNodes(t *testing.T) {
	tree := t.TempDir()
	if err := os.MkdirAll(filepath.Join(tree, "dev", "pts"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/proc/self/fd", filepath.Join(tree, "dev", "fd")); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range missingDevNodes(tree) {
		names = append(names, n.Name)
	}
	want := []string{"console", "full", "null", "ptmx", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("missing (-want +got):\n%s", diff)
	}
}

// TestAddDevNodesWithRealDebugfs runs the script through the real debugfs
// on a real ext4 image, as any user: the nodes must come out owned by root
// with the right modes, and a second run must add nothing.
func TestAddDevNodesWithRealDebugfs(t *testing.T) {
	for _, tool := range []string{"mkfs.ext4", "debugfs"} {
		if _, err := system.LookPath(tool); err != nil {
			t.Skipf("needs %s (e2fsprogs), which is not installed", tool)
		}
	}
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	image := filepath.Join(dir, "rootfs.ext4")
	if err := makeSparse(image, 64<<20); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := system.Plain()
	if err := r.Run(ctx, mkfsArgv(tree, image)...); err != nil {
		t.Fatal(err)
	}
	b := &builder{deps: Deps{Runner: r, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	if err := b.addDevNodes(ctx, tree, image); err != nil {
		t.Fatalf("adding /dev nodes: %v", err)
	}
	// The tree now looks complete to the check (as a root build's would):
	// nothing is added twice.
	for _, n := range devNodes() {
		if err := os.WriteFile(filepath.Join(tree, "dev", n.Name), nil, 0o644); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
	}
	if err := b.addDevNodes(ctx, tree, image); err != nil {
		t.Fatalf("checking a complete /dev: %v", err)
	}
	out, err := r.Output(ctx, "debugfs", "-R", "stat /dev/ptmx", image)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "Device major/minor number: 05:02") {
		t.Errorf("/dev/ptmx is not 5:2:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "dev.debugfs")); !os.IsNotExist(err) {
		t.Errorf("debugfs script left behind: %v", err)
	}
}
