package archive

import (
	"archive/tar"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestExtractNamesLikeDockerCp covers where a download lands.
func TestExtractNamesLikeDockerCp(t *testing.T) {
	dirArchive := func() []entry { return []entry{dir("src/"), {name: "src/f", body: "in dir"}} }
	contents := func() []entry { return []entry{dir("./"), {name: "./f", body: "in dir"}} }
	file := func() []entry { return []entry{{name: "file", body: "new"}} }
	for _, tc := range []struct {
		name    string
		entries []entry
		dst     string // relative to a directory holding "existing/" and "afile"
		want    []string
		wantErr string
	}{
		{"dir into an existing dir", dirArchive(), "existing", []string{"afile", "existing", "existing/old", "existing/src", "existing/src/f"}, ""},
		{"dir to a new name", dirArchive(), "new", []string{"afile", "existing", "existing/old", "new", "new/f"}, ""},
		{"dir to a new name with a slash", dirArchive(), "new/", []string{"afile", "existing", "existing/old", "new", "new/f"}, ""},
		{"dir onto a file", dirArchive(), "afile", nil, "a directory cannot be copied onto it"},
		{"dir with a missing parent", dirArchive(), "no/such", nil, "parent directory"},
		{"contents into an existing dir", contents(), "existing", []string{"afile", "existing", "existing/f", "existing/old"}, ""},
		{"contents to a new name", contents(), "new", []string{"afile", "existing", "existing/old", "new", "new/f"}, ""},
		{"file into an existing dir", file(), "existing/", []string{"afile", "existing", "existing/file", "existing/old"}, ""},
		{"file to a new name", file(), "renamed", []string{"afile", "existing", "existing/old", "renamed"}, ""},
		{"file onto a file", file(), "afile", []string{"afile", "existing", "existing/old"}, ""},
		{"file to a missing dir", file(), "nodir/", nil, "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			os.MkdirAll(filepath.Join(base, "existing"), 0o755)
			os.WriteFile(filepath.Join(base, "existing", "old"), []byte("old"), 0o644)
			os.WriteFile(filepath.Join(base, "afile"), []byte("old"), 0o644)
			sum, err := Extract(makeTar(t, tc.entries...), filepath.Join(base, tc.dst)+map[bool]string{true: "/"}[strings.HasSuffix(tc.dst, "/")])
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := listTree(t, base)
			slices.Sort(got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("tree (-want +got):\n%s", diff)
			}
			if !strings.HasPrefix(sum.Path, base) {
				t.Errorf("summary path %s", sum.Path)
			}
		})
	}
	// A file onto a file replaces its content.
	base := t.TempDir()
	p := filepath.Join(base, "afile")
	os.WriteFile(p, []byte("old content"), 0o644)
	if _, err := Extract(makeTar(t, entry{name: "x", body: "new"}), p); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(p); string(data) != "new" {
		t.Errorf("afile = %q", data)
	}
}

func TestExtractRefusesOddFirstEntries(t *testing.T) {
	for _, entries := range [][]entry{
		{{name: "a/b", body: "x"}},
		{{name: "l", link: "x", typ: tar.TypeLink}},
	} {
		if _, err := Extract(makeTar(t, entries...), t.TempDir()); err == nil {
			t.Errorf("%+v: no error", entries[0])
		}
	}
	if _, err := Extract(makeTar(t), t.TempDir()); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty archive: %v", err)
	}
}

func TestSource(t *testing.T) {
	for in, want := range map[string][2]string{
		"/a/b": {"/a", "b"}, "/a/b/": {"/a", "b"}, "/a/b/.": {"/a/b", "."}, "b": {".", "b"},
		"/": {"/", "."}, "/.": {"/", "."}, ".": {".", "."}, "sub/.": {"sub", "."}, "-x": {".", "-x"},
	} {
		if d, n := Source(in); d != want[0] || n != want[1] {
			t.Errorf("Source(%q) = %q, %q; want %q", in, d, n, want)
		}
	}
}

func TestPlanUpload(t *testing.T) {
	for _, tc := range []struct {
		src     string
		isDir   bool
		dst     string
		kind    PathKind
		want    Upload
		wantErr string
	}{
		{"/h/app", true, "/srv", KindDir, Upload{"/srv", "app"}, ""},
		{"/h/app/.", true, "/srv", KindDir, Upload{"/srv", "."}, ""},
		{"/h/app", true, "/srv/new", KindMissing, Upload{"/srv", "new"}, ""},
		{"/h/app/.", true, "/srv/new/", KindMissing, Upload{"/srv", "new"}, ""},
		{"/h/app", true, "/srv/file", KindFile, Upload{}, "a directory cannot be copied onto it"},
		{"/h/f.txt", false, "/srv", KindDir, Upload{"/srv", "f.txt"}, ""},
		{"/h/f.txt", false, "/srv/g.txt", KindFile, Upload{"/srv", "g.txt"}, ""},
		{"/h/f.txt", false, "/srv/g.txt", KindMissing, Upload{"/srv", "g.txt"}, ""},
		{"/h/f.txt", false, "/srv/nodir/", KindMissing, Upload{}, "does not exist"},
		{"/h/f.txt", false, "/no/such/x", KindNoParent, Upload{}, "/no/such does not exist"},
	} {
		got, err := PlanUpload(tc.src, tc.isDir, tc.dst, tc.kind)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s -> %s (%s): err %v, want %q", tc.src, tc.dst, tc.kind, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s -> %s (%s) = %+v, %v; want %+v", tc.src, tc.dst, tc.kind, got, err, tc.want)
		}
	}
}

// TestProbeArgv runs the probe with the host's sh, as the guest would.
func TestProbeArgv(t *testing.T) {
	base := t.TempDir()
	os.Mkdir(filepath.Join(base, "d"), 0o755)
	os.WriteFile(filepath.Join(base, "f"), nil, 0o644)
	os.Symlink("nowhere", filepath.Join(base, "dangling"))
	os.Symlink("d", filepath.Join(base, "dlink"))
	for p, want := range map[string]PathKind{
		"d": KindDir, "dlink": KindDir, "f": KindFile, "dangling": KindFile,
		"new": KindMissing, "d/new": KindMissing, "no/such": KindNoParent, "-n": KindMissing,
	} {
		argv := ProbeArgv(filepath.Join(base, p))
		out, err := exec.Command(argv[0], argv[1:]...).Output()
		if err != nil {
			t.Fatal(err)
		}
		if got, err := ParseProbe(out); err != nil || got != want {
			t.Errorf("probe %s = %q, %v; want %q", p, got, err, want)
		}
	}
	if _, err := ParseProbe([]byte("sh: oops\n")); err == nil {
		t.Error("ParseProbe accepted garbage")
	}
}
