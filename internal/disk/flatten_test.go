package disk

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestScriptQuotesAndRefuses(t *testing.T) {
	var s script
	s.add("write", "/tmp/a b", `/etc/x"y`)
	s.add("cd", "<12>")
	s.add("ea_get", "-f", "/d/x1-0", "<12>", "user.note")
	s.add("mkdir", "")
	want := []string{`write "/tmp/a b" "/etc/x""y"`, "cd <12>", "ea_get -f /d/x1-0 <12> user.note", `mkdir ""`}
	if diff := cmp.Diff(want, s.cmds); diff != "" || s.err != nil {
		t.Errorf("commands (-want +got):\n%s (err %v)", diff, s.err)
	}
	for name, arg := range map[string]string{"newline": "a\nb", "carriage return": "a\rb", "nul": "a\x00b", "too long": strings.Repeat("x", maxLine)} {
		var s script
		s.add("stat", arg)
		s.add("stat", "/ok")
		if s.err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseInodeStatSamples(t *testing.T) {
	// Captured from debugfs 1.47.0: a regular file with xattrs (one in an
	// external block, too long for stat to print) and two hard links, an
	// opaque directory, fast and slow symlinks, a whiteout, a FIFO, a
	// block device, a missing path and a non-stat command.
	data, err := os.ReadFile("testdata/debugfs-walk.txt")
	if err != nil {
		t.Fatal(err)
	}
	cmds := []string{"ls -p /", "ls -p /d", "stat /f", "stat /d", "stat /fast", "stat /slow", "stat /d/wh", `stat "/d/sp ace"`, "stat /d/blk", "stat /missing", "stats -h"}
	sec, err := splitSections(string(data), cmds)
	if err != nil {
		t.Fatal(err)
	}
	var got []inodeStat
	for _, out := range sec[2:] {
		st, ok, err := parseInodeStat(out)
		if err != nil {
			t.Fatal(err)
		}
		if ok != (st.Ino != 0) {
			t.Errorf("ok = %v for inode %d", ok, st.Ino)
		}
		got = append(got, st)
	}
	now := uint32(0x6b09d4ab)
	want := []inodeStat{
		{Ino: 13, Mode: 0o100644, Size: 3, Links: 2, Blocks: 4, FileACL: 2330, Mtime: 0x6553f100, MtimeExtra: 0x12345678, HasExtra: true,
			Xattrs: []xattrInfo{{"user.note", 11, "hello world"}, {"security.capability", 20, "01 00 00 02 00 20 00 00 00 00 00 00 00 00 00 00 00 00 00 00 "}, {"user.big", 300, ""}}},
		{Ino: 12, Mode: 0o40755, Size: 1024, Links: 2, Blocks: 2, Mtime: now, HasExtra: true, Xattrs: []xattrInfo{{"trusted.overlay.opaque", 1, "y"}}},
		{Ino: 14, Mode: 0o120777, Size: 8, Links: 1, Mtime: now, HasExtra: true, Target: "/etc/a b", FastLink: true},
		{Ino: 15, Mode: 0o120777, Size: 90, Links: 1, Blocks: 2, Mtime: now, HasExtra: true},
		{Ino: 16, Mode: 0o20000, Links: 1, Mtime: now, HasExtra: true},
		{Ino: 17, Mode: 0o10000, Links: 1, Mtime: now, HasExtra: true},
		{Ino: 18, Mode: 0o60000, Links: 1, Mtime: now, HasExtra: true, Major: 259, Minor: 3},
		{},
		{},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(inodeStat{}, xattrInfo{})); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	if !got[4].isWhiteout() || got[5].isWhiteout() || got[6].isWhiteout() {
		t.Error("whiteout detection")
	}
	if s := got[0].seconds(); s != 1700000000 {
		t.Errorf("seconds = %d", s)
	}
	// Epoch bits extend the 32-bit field past 2038.
	if s := (inodeStat{Mtime: 0x80000000, MtimeExtra: 1}).seconds(); s != 1<<31 {
		t.Errorf("seconds past 2038 = %d, want %d", s, int64(1)<<31)
	}

	small := "Inode: 5   Type: regular    Mode:  0600   Flags: 0x0\nGeneration: 0    Version: 0x00000000\nUser:  1000   Group:  1000   Size: 7\nFile ACL: 0\nLinks: 1   Blockcount: 2\nFragment:  Address: 0    Number: 0    Size: 0\nctime: 0x5f5e1000 -- x\natime: 0x5f5e1000 -- x\nmtime: 0x5f5e1000 -- x\n"
	if st, ok, err := parseInodeStat(small); !ok || err != nil || st.Mtime != 0x5f5e1000 || st.HasExtra || st.UID != 1000 {
		t.Errorf("small inode: %+v %v %v", st, ok, err)
	}
	if _, _, err := parseInodeStat("Inode: 5   Type: regular    Mode:  0600   Flags: 0x0\n"); err == nil {
		t.Error("a truncated stat was accepted")
	}
	// A fast link target is cut by its size, whatever it holds.
	odd := strings.Replace(sec[4], `Size: 8`, `Size: 10`, 1)
	odd = strings.Replace(odd, `"/etc/a b"`, `"/etc/a" b"`, 1)
	if _, _, err := parseInodeStat(odd); err == nil {
		t.Error("a fast link target shorter than its size was accepted")
	}
}

func TestParseLsNames(t *testing.T) {
	// Captured: names with a newline, a quote and a fake debugfs echo.
	data, err := os.ReadFile("testdata/debugfs-ls-names.txt")
	if err != nil {
		t.Fatal(err)
	}
	ents, err := parseLs(string(data))
	if err != nil {
		t.Fatal(err)
	}
	want := []dirent{
		{Ino: 13, Mode: 0o100644, Name: "debugfs: stat <2>"},
		{Ino: 14, Mode: 0o100644, Name: "new\nline"},
		{Ino: 15, Mode: 0o100644, Name: `q"uote`},
	}
	if diff := cmp.Diff(want, ents); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"ls: Ext2 inode is not a directory\n", "/12/040755/0/0/.//\ngarbage\n", "/12/0407x5/0/0/a//\n"} {
		if _, err := parseLs(bad); err == nil {
			t.Errorf("parseLs(%q) accepted", bad)
		}
	}
}

func TestUpperFiles(t *testing.T) {
	dir := func(p string, x ...xattrInfo) node {
		return node{Path: p, St: inodeStat{Mode: modeDir | 0o755, Xattrs: x}}
	}
	nodes := []node{
		dir("/upper", xattrInfo{Name: "trusted.overlay.uuid", Len: 16}, xattrInfo{Name: "trusted.overlay.impure", Len: 1, Value: "y"}),
		dir("/upper/etc", xattrInfo{Name: "trusted.overlay.origin", Len: 29}),
		dir("/upper/var", xattrInfo{Name: "trusted.overlay.opaque", Len: 1, Value: "y"}, xattrInfo{Name: "user.keep", Len: 1, Value: "k"}),
	}
	ups, err := upperFiles(nodes)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, u := range ups {
		paths = append(paths, u.Path)
	}
	if diff := cmp.Diff([]string{"/", "/etc", "/var"}, paths); diff != "" || ups[1].Opaque || !ups[2].Opaque {
		t.Errorf("paths (-want +got):\n%s; opaque %v %v", diff, ups[1].Opaque, ups[2].Opaque)
	}
	if got := xattrNames(ups[2].St); !cmp.Equal(got, []string{"user.keep"}) {
		t.Errorf("copied xattrs = %q", got)
	}
	for xattr, want := range map[string]string{
		"trusted.overlay.redirect": "redirect_dir",
		"trusted.overlay.metacopy": "metacopy",
		"trusted.overlay.whatever": "does not know",
	} {
		bad := append([]node(nil), nodes...)
		bad = append(bad, node{Path: "/upper/x", St: inodeStat{Mode: modeRegular, Xattrs: []xattrInfo{{Name: xattr, Len: 1}}}})
		if _, err := upperFiles(bad); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want one naming %s", xattr, err, want)
		}
	}
	if _, err := upperFiles([]node{{Path: "/upper", St: inodeStat{Mode: modeDir, Xattrs: []xattrInfo{{Name: "trusted.overlay.opaque", Len: 1, Value: "x"}}}}}); err == nil {
		t.Error("opaque=x accepted")
	}
	if _, err := upperFiles(nil); err == nil || !strings.Contains(err.Error(), "MakeLayer") {
		t.Errorf("no /upper: err = %v", err)
	}
}

// upperSample is a small upper and the image copy under it: a merged
// /etc with a changed file, a new hard-linked pair and a whiteout; an
// opaque /var/cache replacing a tree; a new /opt tree with a whiteout
// inside it (nothing to hide); a file replacing a directory; and a
// whiteout over nothing.
func upperSample() ([]upperFile, map[string]inodeStat) {
	dirSt := func(ino uint32) inodeStat { return inodeStat{Ino: ino, Mode: modeDir | 0o755, Links: 3} }
	reg := func(ino uint32) inodeStat { return inodeStat{Ino: ino, Mode: modeRegular | 0o644, Links: 1, Size: 3} }
	wh := inodeStat{Ino: 99, Mode: modeChar, Links: 5}
	ups := []upperFile{
		{Path: "/", St: dirSt(2)},
		{Path: "/etc", St: dirSt(12)},
		{Path: "/var", St: dirSt(13)},
		{Path: "/opt", St: dirSt(14)},
		{Path: "/srv", St: reg(15)},
		{Path: "/gone", St: wh},
		{Path: "/etc/motd", St: reg(20)},
		{Path: "/etc/a b", St: inodeStat{Ino: 21, Mode: modeRegular | 0o600, Links: 2, Size: 1, Xattrs: []xattrInfo{{Name: "user.x", Len: 2}}}},
		{Path: "/etc/hl", St: inodeStat{Ino: 21, Mode: modeRegular | 0o600, Links: 2, Size: 1}},
		{Path: "/etc/old", St: wh},
		{Path: "/var/cache", St: dirSt(22), Opaque: true},
		{Path: "/opt/app", St: dirSt(23)},
		{Path: "/opt/nothing", St: wh},
		{Path: "/var/cache/f", St: reg(24)},
		{Path: "/opt/app/link", St: inodeStat{Ino: 25, Mode: modeSymlink | 0o777, Size: 4, Target: "../x", FastLink: true}},
		{Path: "/opt/app/fifo", St: inodeStat{Ino: 26, Mode: modeFIFO | 0o600}},
	}
	dst := map[string]inodeStat{
		"/":          dirSt(2),
		"/etc":       {Ino: 500, Mode: modeDir | 0o755, Links: 5, Xattrs: []xattrInfo{{Name: "user.old", Len: 1}}},
		"/var":       {Ino: 501, Mode: modeDir | 0o755, Links: 4},
		"/srv":       {Ino: 502, Mode: modeDir | 0o755, Links: 2},
		"/etc/motd":  {Ino: 503, Mode: modeRegular | 0o644, Links: 1},
		"/etc/old":   {Ino: 504, Mode: modeRegular | 0o644, Links: 2, FileACL: 777},
		"/var/cache": {Ino: 505, Mode: modeDir | 0o755, Links: 3},
	}
	return ups, dst
}

func TestPlanFlatten(t *testing.T) {
	ups, dst := upperSample()
	p, err := planFlatten(ups, dst)
	if err != nil {
		t.Fatal(err)
	}
	paths := func(us []upperFile) []string {
		var r []string
		for _, u := range us {
			r = append(r, u.Path)
		}
		return r
	}
	var removed []string
	for _, n := range p.Remove {
		removed = append(removed, n.Path)
	}
	got := map[string][]string{"remove": removed, "make": paths(p.Make), "merge": paths(p.Merge), "gone": p.Gone}
	want := map[string][]string{
		"remove": {"/srv", "/etc/motd", "/etc/old", "/var/cache"},
		"make":   {"/opt", "/srv", "/etc/motd", "/etc/a b", "/etc/hl", "/var/cache", "/opt/app", "/var/cache/f", "/opt/app/link", "/opt/app/fifo"},
		"merge":  {"/", "/etc", "/var"},
		"gone":   {"/gone", "/etc/old"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
	if p.Dst["/etc"].Ino != 500 || p.Dst["/var"].Ino != 501 {
		t.Errorf("merged directories' image inodes: %+v", p.Dst)
	}
}

func TestMakeScript(t *testing.T) {
	ups, dst := upperSample()
	p, err := planFlatten(ups, dst)
	if err != nil {
		t.Fatal(err)
	}
	// The image's /var/cache tree, as walk returns it: with a file that
	// has a second name outside the tree.
	trees := []node{
		{Path: "/srv", St: dst["/srv"]},
		{Path: "/var/cache", St: dst["/var/cache"]},
		{Path: "/var/cache/sub", St: inodeStat{Ino: 600, Mode: modeDir | 0o755, Links: 2}},
		{Path: "/var/cache/x", St: inodeStat{Ino: 601, Mode: modeRegular, Links: 2}},
		{Path: "/var/cache/sub/y", St: inodeStat{Ino: 602, Mode: modeRegular, Links: 1}},
	}
	mk, err := makeScript(p, trees, "/stage")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		// Removals: unlinked in their directories (the first in /, the
		// current one), then freed by number.
		"unlink srv",
		"sif <2> links_count 2",
		"cd <500>",
		"unlink motd",
		"unlink old",
		"cd <501>",
		"unlink cache",
		"sif <501> links_count 3",
		"sif <503> links_count 0", "kill_file <503>",
		"sif <504> links_count 1", // its other name stays
		"sif <601> links_count 1",
		"sif <602> links_count 0", "kill_file <602>",
		"sif <502> links_count 0", "kill_file <502>",
		"sif <505> links_count 0", "kill_file <505>",
		"sif <600> links_count 0", "kill_file <600>",
		// New entries, directory by directory, each listed afterwards.
		"cd <2>",
		"mkdir opt",
		"write /stage/15 srv",
		"ls -p",
		"cd <500>",
		"write /stage/20 motd",
		`write /stage/21 "a b"`,
		`ln "/etc/a b" hl`,
		"ls -p",
		"cd <501>",
		"mkdir cache",
		"ls -p",
		"cd /opt",
		"mkdir app",
		"ls -p",
		"cd /var/cache",
		"write /stage/24 f",
		"ls -p",
		"cd /opt/app",
		"symlink link ../x",
		"mknod fifo p",
		"ls -p",
		"cd <2>",
	}
	if diff := cmp.Diff(want, mk.cmds); diff != "" {
		t.Errorf("script (-want +got):\n%s", diff)
	}
	if mk.tidy {
		t.Error("tidy set, but no freed inode had an xattr block (/etc/old keeps a link)")
	}
	if i := mk.lists["/etc"]; mk.cmds[i] != "ls -p" || mk.cmds[i-1] != `ln "/etc/a b" hl` {
		t.Errorf("listing of /etc at %d: %q", i, mk.cmds[i-1:i+1])
	}

	// Freeing an inode with an xattr block asks for the tidy-up.
	dst["/etc/old"] = inodeStat{Ino: 504, Mode: modeRegular, Links: 1, FileACL: 777}
	p, _ = planFlatten(ups, dst)
	if mk, err := makeScript(p, trees, "/stage"); err != nil || !mk.tidy {
		t.Errorf("tidy = %v (%v), want set", mk.tidy, err)
	}
}

// fakeStat renders st the way debugfs's stat prints it, as far as
// parseInodeStat reads it.
func fakeStat(st inodeStat) string {
	typ := ""
	for name, bits := range statTypes {
		if bits == st.Mode&modeType {
			typ = name
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Inode: %d   Type: %s    Mode:  0%03o   Flags: 0x0\nUser: %5d   Group: %5d   Project:     0   Size: %d\nFile ACL: %d\nLinks: %d   Blockcount: 0\n mtime: 0x%08x:%08x -- x\n",
		st.Ino, typ, st.Mode&0o7777, st.UID, st.GID, st.Size, st.FileACL, st.Links, st.Mtime, st.MtimeExtra)
	if len(st.Xattrs) > 0 {
		b.WriteString("Extended attributes:\n")
		for _, x := range st.Xattrs {
			fmt.Fprintf(&b, "  %s (%d)\n", x.Name, x.Len)
		}
	}
	return b.String()
}

func lsLine(ino uint32, mode uint32, name string) string {
	return fmt.Sprintf("/%d/%06o/0/0/%s/0/\n", ino, mode, name)
}

func TestAttributesAndReadBack(t *testing.T) {
	ups, dst := upperSample()
	p, _ := planFlatten(ups, dst)
	trees := []node{{Path: "/srv", St: dst["/srv"]}, {Path: "/var/cache", St: dst["/var/cache"]}}
	mk, err := makeScript(p, trees, "/stage")
	if err != nil {
		t.Fatal(err)
	}
	// What the first run's listings say: the new inodes' numbers.
	out := make([]string, len(mk.cmds))
	out[mk.lists["/"]] = lsLine(700, 0o40755, "opt") + lsLine(701, 0o100644, "srv") + lsLine(40, 0o40755, "etc")
	out[mk.lists["/etc"]] = lsLine(702, 0o100644, "motd") + lsLine(703, 0o100600, "a b") + lsLine(703, 0o100600, "hl")
	out[mk.lists["/var"]] = lsLine(704, 0o40755, "cache")
	out[mk.lists["/opt"]] = lsLine(705, 0o40755, "app")
	out[mk.lists["/var/cache"]] = lsLine(706, 0o100644, "f")
	out[mk.lists["/opt/app"]] = lsLine(707, 0o120777, "link") + lsLine(708, 0o10600, "fifo")
	made, err := madeInodes(p, mk, out)
	if err != nil {
		t.Fatal(err)
	}
	if made["/etc/a b"] != 703 || made["/etc/hl"] != 703 || made["/opt/app/fifo"] != 708 {
		t.Errorf("made = %v", made)
	}
	bad := append([]string(nil), out...)
	bad[mk.lists["/opt/app"]] = lsLine(707, 0o100644, "link")
	if _, err := madeInodes(p, mk, bad); err == nil || !strings.Contains(err.Error(), "/opt/app/fifo was not made") || !strings.Contains(err.Error(), "/opt/app/link was made with type") {
		t.Errorf("missing and mistyped entries: err = %v", err)
	}

	attrs, verify, err := attributeScript(p, made, "/stage")
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(attrs, "\n")
	for _, want := range []string{
		"sif <703> mode 0100600\nsif <703> uid 0\nsif <703> gid 0\nea_set -r -f /stage/x21-0 <703> user.x\nsif <703> mtime @0\nsif <703> links_count 2",
		"sif <500> mode 040755\nsif <500> uid 0\nsif <500> gid 0\nea_rm <500> user.old\nsif <500> mtime @0",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("attribute script lacks\n%s\nin\n%s", want, joined)
		}
	}
	if strings.Count(joined, "<703> mode") != 1 {
		t.Error("a hard-linked inode's attributes are set more than once")
	}
	wantVerify := []string{"stat <700>", "stat <701>", "stat <702>", "stat <703>", "stat <704>", "stat <705>", "stat <706>", "stat <707>", "stat <708>",
		"stat <2>", "stat <500>", "stat <501>", "ls -p <2>", "ls -p <500>"}
	if diff := cmp.Diff(wantVerify, verify); diff != "" {
		t.Errorf("verify script (-want +got):\n%s", diff)
	}

	// The read-back: what the plan wants passes; a difference is named.
	var back []string
	byIno := map[uint32]upperFile{}
	for _, u := range p.Make {
		if _, ok := byIno[made[u.Path]]; !ok {
			byIno[made[u.Path]] = u
		}
	}
	for _, c := range verify[:9] {
		var ino uint32
		fmt.Sscanf(c, "stat <%d>", &ino)
		st := byIno[ino].St
		st.Ino = ino
		if st.Mode&modeType != modeDir {
			st.Links = map[uint32]uint32{703: 2}[ino]
			if st.Links == 0 {
				st.Links = 1
			}
		}
		back = append(back, fakeStat(st))
	}
	for _, u := range p.Merge {
		st := u.St
		st.Ino = p.Dst[u.Path].Ino
		back = append(back, fakeStat(st))
	}
	back = append(back, lsLine(40, 0o40755, "etc"), lsLine(702, 0o100644, "motd"))
	if err := checkFlattened(p, made, back); err != nil {
		t.Fatalf("a faithful read-back was refused: %v", err)
	}
	wrong := append([]string(nil), back...)
	wrong[3] = strings.Replace(wrong[3], "Mode:  0600", "Mode:  0644", 1)
	wrong[len(wrong)-1] += lsLine(504, 0o100644, "old")
	err = checkFlattened(p, made, wrong)
	if err == nil || !strings.Contains(err.Error(), "/etc/a b: mode 100644, want 100600") || !strings.Contains(err.Error(), "/etc/old is still there") {
		t.Errorf("err = %v, want the mode and the leftover named", err)
	}
}
