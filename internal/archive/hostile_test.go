package archive

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// entry is one member of a hand-made archive.
type entry struct {
	name, link, body string
	typ              byte
	mode             int64
}

func makeTar(t *testing.T, entries ...entry) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: typ, Mode: mode, Size: int64(len(e.body))}
		if typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return &buf
}

func dir(name string) entry { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }

// listTree lists every path under root.
func listTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err == nil && p != root {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func TestExtractRefusesToWriteOutside(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries func(outside string) []entry
		want    string
	}{
		{"dotdot in a name", func(string) []entry {
			return []entry{dir("d/"), {name: "d/../../x", body: "evil"}}
		}, `".." in a name`},
		{"dotdot at the top", func(string) []entry { return []entry{{name: "../x", body: "evil"}} }, `".." in a name`},
		{"absolute name", func(string) []entry { return []entry{{name: "/etc/x", body: "evil"}} }, "absolute name"},
		{"absolute name later", func(outside string) []entry {
			return []entry{dir("d/"), {name: outside + "/x", body: "evil"}}
		}, "absolute name"},
		{"absolute symlink written through", func(outside string) []entry {
			return []entry{dir("d/"), {name: "d/a", link: outside, typ: tar.TypeSymlink}, {name: "d/a/x", body: "evil"}}
		}, "outside the destination"},
		{"symlink to / written through", func(string) []entry {
			return []entry{dir("d/"), {name: "d/a", link: "/", typ: tar.TypeSymlink}, {name: "d/a/tmp/x", body: "evil"}}
		}, "outside the destination"},
		{"relative symlink written through", func(string) []entry {
			return []entry{dir("d/"), {name: "d/a", link: "../../outside", typ: tar.TypeSymlink}, {name: "d/a/x", body: "evil"}}
		}, "outside the destination"},
		{"symlink then a directory through it", func(outside string) []entry {
			return []entry{dir("d/"), {name: "d/a", link: outside, typ: tar.TypeSymlink}, dir("d/a/sub/")}
		}, "outside the destination"},
		{"hard link with dotdot", func(string) []entry {
			return []entry{dir("d/"), {name: "d/l", link: "d/../../outside/secret", typ: tar.TypeLink}}
		}, `".." in a name`},
		{"hard link to an absolute path", func(outside string) []entry {
			return []entry{dir("d/"), {name: "d/l", link: outside + "/secret", typ: tar.TypeLink}}
		}, "absolute name"},
		{"hard link through a symlink", func(outside string) []entry {
			return []entry{dir("d/"), {name: "d/s", link: outside, typ: tar.TypeSymlink}, {name: "d/l", link: "d/s/secret", typ: tar.TypeLink}}
		}, "outside the destination"},
		{"hard link outside the copied tree", func(string) []entry {
			return []entry{dir("d/"), {name: "d/l", link: "other/secret", typ: tar.TypeLink}}
		}, "outside the copied directory"},
		{"entry beside the copied tree", func(string) []entry {
			return []entry{dir("d/"), {name: "e/x", body: "evil"}}
		}, "outside the copied directory"},
		{"entries after a single file", func(string) []entry {
			return []entry{{name: "f", body: "ok"}, {name: "g", body: "evil"}}
		}, "nothing may follow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			outside := filepath.Join(base, "outside")
			os.Mkdir(outside, 0o755)
			os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600)
			dst := filepath.Join(base, "dst")
			os.Mkdir(dst, 0o755)
			_, err := Extract(makeTar(t, tc.entries(outside)...), dst+"/")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one saying %q", err, tc.want)
			}
			if got := listTree(t, outside); len(got) != 1 || got[0] != "secret" {
				t.Errorf("outside now holds %q", got)
			}
			if data, _ := os.ReadFile(filepath.Join(outside, "secret")); string(data) != "secret" {
				t.Errorf("outside/secret now holds %q", data)
			}
			if _, err := os.Lstat("/x"); err == nil {
				t.Error("/x exists")
			}
			for _, p := range listTree(t, base) {
				if strings.HasSuffix(p, "x") && !strings.HasPrefix(p, "dst") {
					t.Errorf("%s was written outside dst", p)
				}
			}
		})
	}
}

func TestExtractReplacesSymlinksInsteadOfFollowingThem(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	os.WriteFile(outside, []byte("keep"), 0o644)
	dst := filepath.Join(base, "dst")
	os.MkdirAll(filepath.Join(dst, "d"), 0o755)
	os.Symlink(outside, filepath.Join(dst, "f"))
	os.Symlink(outside, filepath.Join(dst, "d", "g"))
	// A single file over a symlink in dst, and a tree over a symlink in it.
	if _, err := Extract(makeTar(t, entry{name: "f", body: "new"}), dst); err != nil {
		t.Fatal(err)
	}
	if _, err := Extract(makeTar(t, dir("d/"), entry{name: "d/g", body: "new"}), dst); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(outside); string(data) != "keep" {
		t.Errorf("the symlink's target was written: %q", data)
	}
	for _, p := range []string{"f", "d/g"} {
		fi, err := os.Lstat(filepath.Join(dst, p))
		if err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s is not a regular file now: %v %v", p, fi, err)
		}
	}
}

func TestExtractSkipsSpecialFiles(t *testing.T) {
	dst := t.TempDir()
	sum, err := Extract(makeTar(t, dir("d/"),
		entry{name: "d/null", typ: tar.TypeChar},
		entry{name: "d/sda", typ: tar.TypeBlock},
		entry{name: "d/fifo", typ: tar.TypeFifo},
		entry{name: "d/ok", body: "ok"}), dst)
	if err != nil {
		t.Fatal(err)
	}
	if got := listTree(t, filepath.Join(dst, "d")); len(got) != 1 || got[0] != "ok" {
		t.Errorf("extracted %q, want only ok", got)
	}
	if len(sum.Skipped) != 3 || !strings.Contains(sum.Skipped[0], "character device") {
		t.Errorf("skipped %q", sum.Skipped)
	}
}

func TestExtractDropsSetuidKeepsSticky(t *testing.T) {
	dst := t.TempDir()
	_, err := Extract(makeTar(t, dir("d/"),
		entry{name: "d/suid", body: "x", mode: 0o4755},
		entry{name: "d/sgid", body: "x", mode: 0o2755},
		entry{name: "d/tmp/", typ: tar.TypeDir, mode: 0o1777}), dst)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{"suid": 0o755, "sgid": 0o755, "tmp": os.ModeDir | os.ModeSticky | 0o777} {
		fi, _ := os.Stat(filepath.Join(dst, "d", name))
		if fi.Mode() != want {
			t.Errorf("%s: mode %s, want %s", name, fi.Mode(), want)
		}
	}
}

func TestExtractAppliesDirectoryModesLast(t *testing.T) {
	dst := t.TempDir()
	_, err := Extract(makeTar(t,
		entry{name: "ro/", typ: tar.TypeDir, mode: 0o555},
		entry{name: "ro/sub/", typ: tar.TypeDir, mode: 0o500},
		entry{name: "ro/sub/f", body: "x", mode: 0o444}), dst)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(dst, "ro", "sub"), 0o700); os.Chmod(filepath.Join(dst, "ro"), 0o700) })
	fi, _ := os.Stat(filepath.Join(dst, "ro", "sub"))
	if fi.Mode().Perm() != 0o500 {
		t.Errorf("ro/sub mode %s", fi.Mode())
	}
	if data, _ := os.ReadFile(filepath.Join(dst, "ro", "sub", "f")); string(data) != "x" {
		t.Errorf("ro/sub/f = %q", data)
	}
}
