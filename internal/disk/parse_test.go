package disk

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseFSSize(t *testing.T) {
	// Captured from `debugfs -R stats` of a 16 MiB image with 1 KiB blocks.
	data, err := os.ReadFile("testdata/debugfs-stats.txt")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseFSSize(data)
	if err != nil {
		t.Fatal(err)
	}
	if got != 16<<20 {
		t.Errorf("ParseFSSize = %d, want %d", got, 16<<20)
	}
	if _, err := ParseFSSize([]byte("debugfs: Bad magic number in super-block\n")); err == nil {
		t.Error("garbage accepted")
	}
}

func TestSplitSectionsAndParseStat(t *testing.T) {
	// Captured from a debugfs script run: stat and cat of present and
	// missing paths (debugfs prints nothing on stdout for a missing one).
	data, err := os.ReadFile("testdata/debugfs-stat-cat.txt")
	if err != nil {
		t.Fatal(err)
	}
	cmds := []string{"stat /", "stat /etc/hostname", "cat /etc/hostname", "stat /missing", "cat /missing", "stat /etc"}
	sec, err := splitSections(string(data), cmds)
	if err != nil {
		t.Fatal(err)
	}
	if sec[2] != "old\n" || sec[4] != "" {
		t.Errorf("cat sections = %q, %q", sec[2], sec[4])
	}
	var got []any
	for _, i := range []int{0, 1, 3, 5} {
		ino, ok := parseStat(sec[i])
		got = append(got, ok, ino)
	}
	want := []any{
		true, inode{Type: "directory", Perm: 0o755, Size: 1024},
		true, inode{Type: "regular", Perm: 0o644, Size: 4},
		false, inode{},
		true, inode{Type: "directory", Perm: 0o755, Size: 1024},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stat parse (-want +got):\n%s", diff)
	}
	if _, err := splitSections(string(data), []string{"stat /", "rm /x"}); err == nil {
		t.Error("missing echo not reported")
	}
}

func TestSplitSectionsContentWithoutNewline(t *testing.T) {
	out := "debugfs: cat /a\nabcdebugfs: cat /b\nxyz\n"
	sec, err := splitSections(out, []string{"cat /a", "cat /b"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"abc", "xyz\n"}, sec); diff != "" {
		t.Error(diff)
	}
}

func TestHuman(t *testing.T) {
	for n, want := range map[int64]string{8 << 30: "8G", 1536 << 20: "1536M", 4096: "4K", 100: "100 bytes"} {
		if got := human(n); got != want {
			t.Errorf("human(%d) = %q, want %q", n, got, want)
		}
	}
}
