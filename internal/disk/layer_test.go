package disk

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"banger/internal/testutil"
)

func TestMkfsArgvWritesLittle(t *testing.T) {
	got := strings.Join(MkfsLayerArgv("/d/l.ext4"), " ")
	want := "mkfs.ext4 -F -q -L banger-layer -m 0 -E root_owner=0:0,discard,lazy_itable_init=1,lazy_journal_init=1 /d/l.ext4"
	if got != want {
		t.Errorf("layer mkfs = %q, want %q", got, want)
	}
	if w := strings.Join(MkfsWorkArgv("/d/w"), " "); !strings.Contains(w, "-L banger-work") || !strings.Contains(w, "lazy_journal_init=1") {
		t.Errorf("work mkfs = %q", w)
	}
}

func TestFstabWithoutRoot(t *testing.T) {
	in := "# static file system information\n/dev/vda\t/\text4\trw,noatime\t0\t0\nLABEL=banger-work\t/work\text4\trw,nofail\t0\t0\n#/dev/vdb / ext4 defaults 0 0\n"
	got, ok := fstabWithoutRoot(in)
	if !ok {
		t.Fatal("root line not found")
	}
	want := "# static file system information\n" +
		"# banger: / is an overlay of the image and this VM's layer, mounted by the initramfs; the image's line was:\n" +
		"# /dev/vda\t/\text4\trw,noatime\t0\t0\n" +
		"LABEL=banger-work\t/work\text4\trw,nofail\t0\t0\n#/dev/vdb / ext4 defaults 0 0\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fstab (-want +got):\n%s", diff)
	}
	if got, ok := fstabWithoutRoot("UUID=x / ext4 defaults 0 1"); !ok || !strings.HasSuffix(got, "# UUID=x / ext4 defaults 0 1\n") {
		t.Errorf("line without newline: %q, %v", got, ok)
	}
	for _, in := range []string{"", "proc /proc proc defaults 0 0\n", "# / only in a comment\n", "/dev/vdb /srv ext4 defaults 0 0\n"} {
		if got, ok := fstabWithoutRoot(in); ok || got != in {
			t.Errorf("fstabWithoutRoot(%q) = %q, %v; want it unchanged", in, got, ok)
		}
	}
}

func TestLayerIdentityEdit(t *testing.T) {
	files := []guestFile{
		{Path: "/etc/hostname", Data: []byte("dev\n"), Perm: 0o644},
		{Path: "/root/.ssh/authorized_keys", Data: []byte("k\n"), Perm: 0o600},
	}
	p := layerProbe{
		Base: map[string]inode{
			"/":                         {Type: "directory", Perm: 0o755},
			"/etc":                      {Type: "directory", Perm: 0o755},
			"/etc/ssh":                  {Type: "directory", Perm: 0o751, GID: 4},
			"/root":                     {Type: "directory", Perm: 0o750},
			"/etc/ssh/ssh_host_rsa_key": {Type: "regular", Perm: 0o600},
			"/etc/ssh/ssh_host_dsa_key": {Type: "directory"}, // odd: left alone
			"/etc/fstab":                {Type: "regular", Perm: 0o640, GID: 7},
		},
		Upper: map[string]inode{
			"/upper":     {Type: "directory", Perm: 0o755},
			"/upper/etc": {Type: "directory", Perm: 0o700, UID: 5}, // the guest changed it: kept
		},
		Fstab: "/dev/vda / ext4 rw 0 0\n",
	}
	got, err := layerIdentity(files, p)
	if err != nil {
		t.Fatal(err)
	}
	want := edit{
		Dirs: []guestDir{
			{Path: "/upper", Perm: 0o755},
			{Path: "/upper/etc", Perm: 0o700, UID: 5},
			{Path: "/upper/etc/ssh", Perm: 0o751, GID: 4},
			{Path: "/upper/root", Perm: 0o750},
			{Path: "/upper/root/.ssh", Perm: 0o700}, // not in the base: WriteIdentity's
		},
		Files: []guestFile{
			{Path: "/upper/etc/hostname", Data: []byte("dev\n"), Perm: 0o644},
			{Path: "/upper/root/.ssh/authorized_keys", Data: []byte("k\n"), Perm: 0o600},
			{Path: "/upper/etc/fstab", Data: []byte("# banger: / is an overlay of the image and this VM's layer, mounted by the initramfs; the image's line was:\n# /dev/vda / ext4 rw 0 0\n"), Perm: 0o640, GID: 7},
		},
		Whiteouts: []string{"/upper/etc/ssh/ssh_host_rsa_key"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("edit (-want +got):\n%s", diff)
	}

	noUpper := p
	noUpper.Upper = map[string]inode{}
	if _, err := layerIdentity(files, noUpper); err == nil || !strings.Contains(err.Error(), "MakeLayer") {
		t.Errorf("a disk without /upper: err = %v", err)
	}
	fileEtc := p
	fileEtc.Base = map[string]inode{"/": {Type: "directory"}, "/root": {Type: "regular"}}
	if _, err := layerIdentity(files, fileEtc); err == nil {
		t.Error("a base whose /root is a file was accepted")
	}
}

func TestWriteScriptWhiteouts(t *testing.T) {
	e := edit{Whiteouts: []string{"/upper/etc/ssh/a", "/upper/etc/ssh/b key", "/upper/etc/ssh/c", "/upper/x"}}
	existing := map[string]inode{
		"/upper/etc/ssh/a": {Type: "regular"},
		"/upper/etc/ssh/c": {Type: "character special"}, // a whiteout already
	}
	got, err := writeScript(e, existing, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"rm /upper/etc/ssh/a",
		"cd /upper/etc/ssh/", // mknod takes its name literally
		"mknod a c 0 0",
		`mknod "b key" c 0 0`,
		"cd /upper/",
		"mknod x c 0 0",
		"cd /",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("script (-want +got):\n%s", diff)
	}
	existing["/upper/x"] = inode{Type: "directory"}
	if _, err := writeScript(e, existing, nil); err == nil {
		t.Error("a whiteout over a directory was accepted")
	}
}

func TestMakeLayerReal(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "debugfs", "e2fsck")
	p := filepath.Join(t.TempDir(), "layer.ext4")
	if err := realManager().MakeLayer(context.Background(), p, 8<<30); err != nil {
		t.Fatal(err)
	}
	fsck(t, p)
	out, err := exec.Command(toolPath(t, "debugfs"), "-R", "stats", p).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "Filesystem volume name:   banger-layer") {
		t.Errorf("label missing:\n%.300s", out)
	}
	if n, _ := ParseFSSize(out); n != 8<<30 {
		t.Errorf("filesystem size %d, want 8 GiB", n)
	}
	// Inode tables marked zeroed: the guest's ext4lazyinit leaves them be
	// instead of writing them all (128 MiB for 8 GiB).
	groups, err := exec.Command(toolPath(t, "dumpe2fs"), p).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(groups), "\n") {
		if strings.HasPrefix(l, "Group ") && strings.Contains(l, "(Blocks") && !strings.Contains(l, "ITABLE_ZEROED") {
			t.Errorf("inode table not marked zeroed: %s", l)
			break
		}
	}
	for _, d := range []string{"/", "/upper", "/work"} {
		if ino, ok := debugfsStat(t, p, d); !ok || ino.Type != "directory" || ino.Perm != 0o755 || ino.UID != 0 || ino.GID != 0 {
			t.Errorf("%s = %+v (exists %v), want a root-owned 0755 directory", d, ino, ok)
		}
	}
	a := allocated(t, p)
	t.Logf("an 8 GiB layer allocates %d KiB", a>>10)
	if a > 8<<20 {
		t.Errorf("an 8 GiB layer allocates %d bytes, want at most 8 MiB", a)
	}
	if err := realManager().MakeLayer(context.Background(), p, 8<<30); err == nil {
		t.Error("an existing layer was overwritten")
	}
}

// debugfsRun runs a debugfs script against image, failing the test on error.
func debugfsRun(t testing.TB, image string, write bool, cmds ...string) string {
	t.Helper()
	argv := DebugfsArgv(image, write)
	cmd := exec.Command(toolPath(t, "debugfs"), argv[1:]...)
	cmd.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("debugfs %v: %v", cmds, err)
	}
	return string(out)
}

// layerBase is testImage with distinctive directory attributes, an fstab
// and two of the image's own host keys.
func layerBase(t *testing.T) string {
	img := testImage(t, "64M")
	fstab := filepath.Join(t.TempDir(), "fstab")
	os.WriteFile(fstab, []byte("/dev/vda\t/\text4\trw,noatime\t0\t0\nLABEL=banger-work\t/work\text4\trw\t0\t0\n"), 0o644)
	debugfsRun(t, img, true,
		"sif /etc/ssh mode 040751", "sif /etc/ssh gid 4",
		"sif /root mode 040750", "sif /root uid 0", "sif /root gid 0",
		"write "+fstab+" /etc/fstab", "sif /etc/fstab mode 0100644", "sif /etc/fstab uid 0", "sif /etc/fstab gid 0",
		"write "+fstab+" /etc/ssh/ssh_host_ecdsa_key")
	return img
}

func TestWriteLayerIdentityReal(t *testing.T) {
	base := layerBase(t)
	before := testutil.FileSHA256(t, base)
	m := realManager()
	ctx := context.Background()
	layer := filepath.Join(t.TempDir(), "layer.ext4")
	if err := m.MakeLayer(ctx, layer, 8<<30); err != nil {
		t.Fatal(err)
	}
	id := testIdentity(t)
	if err := m.WriteLayerIdentity(ctx, base, layer, id); err != nil {
		t.Fatal(err)
	}
	fsck(t, layer)
	if testutil.FileSHA256(t, base) != before {
		t.Error("the base image changed")
	}
	a := allocated(t, layer)
	t.Logf("an 8 GiB layer with the identity allocates %d KiB", a>>10)
	if a > 16<<20 {
		t.Errorf("layer with identity allocates %d bytes, want at most 16 MiB", a)
	}
	// Parent directories: as in the base; /root/.ssh, which the base
	// lacks, as WriteIdentity makes it.
	for _, d := range []string{"/", "/etc", "/etc/ssh", "/root"} {
		want, _ := debugfsStat(t, base, d)
		got, ok := debugfsStat(t, layer, strings.TrimSuffix("/upper"+d, "/"))
		want.Size, got.Size = 0, 0
		if !ok || got != want {
			t.Errorf("upper %s = %+v, want the base's %+v", d, got, want)
		}
	}
	if got, _ := debugfsStat(t, layer, "/upper/root/.ssh"); got.Perm != 0o700 || got.UID != 0 {
		t.Errorf("/upper/root/.ssh = %+v", got)
	}
	for p, want := range map[string]string{
		"/upper/etc/hostname":                     "dev\n",
		"/upper/root/.ssh/authorized_keys":        string(id.AuthorizedKeys),
		"/upper/etc/ssh/ssh_host_ed25519_key.pub": string(id.HostKeyPublic),
		"/upper/etc/fstab":                        "# banger: / is an overlay of the image and this VM's layer, mounted by the initramfs; the image's line was:\n# /dev/vda\t/\text4\trw,noatime\t0\t0\nLABEL=banger-work\t/work\text4\trw\t0\t0\n",
	} {
		if got := debugfsCat(t, layer, p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	ls := debugfsRun(t, layer, false, "ls -p /upper/etc/ssh")
	var whiteouts []string
	ents, err := parseLs(strings.SplitN(ls, "\n", 2)[1])
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Mode == modeChar {
			whiteouts = append(whiteouts, e.Name)
		}
	}
	slices.Sort(whiteouts)
	if diff := cmp.Diff([]string{"ssh_host_ecdsa_key", "ssh_host_rsa_key"}, whiteouts); diff != "" {
		t.Errorf("whiteouts in /upper/etc/ssh (-want +got):\n%s", diff)
	}

	// Again, as for a renamed VM: files replaced, whiteouts kept.
	id.Hostname = "web"
	if err := m.WriteLayerIdentity(ctx, base, layer, id); err != nil {
		t.Fatal(err)
	}
	fsck(t, layer)
	if got := debugfsCat(t, layer, "/upper/etc/hostname"); got != "web\n" {
		t.Errorf("hostname after rewrite = %q", got)
	}
	if testutil.FileSHA256(t, base) != before {
		t.Error("the base image changed")
	}
}

// TestFlattenWithoutRoot flattens a layer whose upper debugfs wrote the way
// overlayfs would (whiteouts, an opaque directory, a hard link, xattrs):
// the tier without root. TestFlattenMatchesOverlay checks against the
// kernel's overlayfs itself.
func TestFlattenWithoutRoot(t *testing.T) {
	base := layerBase(t)
	doc := filepath.Join(t.TempDir(), "doc")
	os.WriteFile(doc, []byte("documentation\n"), 0o644)
	debugfsRun(t, base, true,
		"mkdir /usr/share", "mkdir /usr/share/doc", "mkdir /usr/share/doc/pkg", "write "+doc+" /usr/share/doc/pkg/README",
		"mkdir /srv", "mkdir /srv/old", "write "+doc+" /srv/old/file")
	before := testutil.FileSHA256(t, base)
	m := realManager()
	ctx := context.Background()
	layer := filepath.Join(t.TempDir(), "layer.ext4")
	must(t, m.MakeLayer(ctx, layer, 64<<20))
	must(t, m.WriteLayerIdentity(ctx, base, layer, testIdentity(t)))
	content := filepath.Join(t.TempDir(), "content")
	os.WriteFile(content, []byte("made in the VM\n"), 0o600)
	debugfsRun(t, layer, true,
		"mkdir /upper/usr", "mkdir /upper/usr/share", "cd /upper/usr/share", "mknod doc c 0 0", "cd /",
		"mkdir /upper/usr/bin", "write "+content+" /upper/usr/bin/tool", "sif /upper/usr/bin/tool mode 0100755",
		"mkdir /upper/opt", "write "+content+" /upper/opt/new",
		"sif /upper/opt/new mode 0104750", "sif /upper/opt/new uid 1000", "sif /upper/opt/new gid 27",
		"sif /upper/opt/new mtime @1700000000", "sif /upper/opt/new mtime_extra 0x4",
		"ea_set /upper/opt/new user.k v", "ln /upper/opt/new /upper/opt/new2", "sif /upper/opt/new links_count 2",
		"mkdir /upper/srv", "ea_set /upper/srv trusted.overlay.opaque y", "write "+content+" /upper/srv/fresh",
		"symlink /upper/srv/link ../opt/new")
	fsck(t, layer)
	layerSum := testutil.FileSHA256(t, layer)

	flat := filepath.Join(t.TempDir(), "flat.ext4")
	must(t, m.Flatten(ctx, base, layer, flat))
	fsck(t, flat)
	if testutil.FileSHA256(t, base) != before || testutil.FileSHA256(t, layer) != layerSum {
		t.Error("Flatten changed the base or the layer")
	}
	for p, want := range map[string]string{
		"/etc/hostname": "dev\n",
		"/usr/bin/tool": "made in the VM\n",
		"/opt/new":      "made in the VM\n",
		"/opt/new2":     "made in the VM\n",
		"/srv/fresh":    "made in the VM\n",
		"/etc/fstab":    "# banger: / is an overlay of the image and this VM's layer, mounted by the initramfs; the image's line was:\n# /dev/vda\t/\text4\trw,noatime\t0\t0\nLABEL=banger-work\t/work\text4\trw\t0\t0\n",
	} {
		if got := debugfsCat(t, flat, p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	for _, p := range []string{"/usr/share/doc", "/usr/share/doc/pkg/README", "/srv/old", "/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_ecdsa_key"} {
		if _, ok := debugfsStat(t, flat, p); ok {
			t.Errorf("%s is still in the flattened image", p)
		}
	}
	out := debugfsRun(t, flat, false, "stat /opt/new", "stat /opt/new2", "stat /srv", "stat /srv/link")
	sec, err := splitSections(out, []string{"stat /opt/new", "stat /opt/new2", "stat /srv", "stat /srv/link"})
	if err != nil {
		t.Fatal(err)
	}
	var st [4]inodeStat
	for i := range st {
		st[i], _, _ = parseInodeStat(sec[i])
	}
	want := inodeStat{Ino: st[0].Ino, Mode: 0o104750, UID: 1000, GID: 27, Size: 15, Links: 2, Blocks: st[0].Blocks, Mtime: 1700000000, MtimeExtra: 4, HasExtra: true, Xattrs: []xattrInfo{{"user.k", 1, "v"}}}
	if diff := cmp.Diff(want, st[0], cmp.AllowUnexported(inodeStat{}, xattrInfo{})); diff != "" {
		t.Errorf("/opt/new (-want +got):\n%s", diff)
	}
	if st[1].Ino != st[0].Ino {
		t.Errorf("/opt/new2 is inode %d, want a hard link to %d", st[1].Ino, st[0].Ino)
	}
	if len(st[2].Xattrs) != 0 {
		t.Errorf("/srv kept overlayfs's attributes: %+v", st[2].Xattrs)
	}
	if st[3].Target != "../opt/new" {
		t.Errorf("/srv/link -> %q", st[3].Target)
	}
}

func TestFlattenGrowsTheImageForALargeLayer(t *testing.T) {
	base := testImage(t, "32M")
	m := realManager()
	ctx := context.Background()
	layer := filepath.Join(t.TempDir(), "layer.ext4")
	must(t, m.MakeLayer(ctx, layer, 128<<20))
	// 48 MiB of data that does not compress to holes: more than the
	// 32 MiB image holds.
	big := filepath.Join(t.TempDir(), "big")
	data := make([]byte, 48<<20)
	for i := range data {
		data[i] = byte(i%251 + 1)
	}
	must(t, os.WriteFile(big, data, 0o644))
	debugfsRun(t, layer, true, "mkdir /upper/srv", "write "+big+" /upper/srv/big")
	flat := filepath.Join(t.TempDir(), "flat.ext4")
	must(t, m.Flatten(ctx, base, layer, flat))
	fsck(t, flat)
	if st, _ := os.Stat(flat); st.Size() <= 48<<20 {
		t.Errorf("flattened image is %d bytes, too small for the layer", st.Size())
	}
	if got := debugfsCat(t, flat, "/srv/big"); got != string(data) {
		t.Errorf("/srv/big reads back %d bytes, want the %d written", len(got), len(data))
	}
	if got := debugfsCat(t, flat, "/etc/hostname"); got != "debian\n" {
		t.Errorf("the image's files: /etc/hostname = %q", got)
	}
}

func TestFlattenRefusesNamesDebugfsCannotTake(t *testing.T) {
	base := testImage(t, "32M")
	// A layer whose upper holds a name with a newline, which a guest can
	// make but a debugfs script line cannot carry.
	tree := filepath.Join(t.TempDir(), "layer")
	must(t, os.MkdirAll(filepath.Join(tree, "upper/etc"), 0o755))
	must(t, os.MkdirAll(filepath.Join(tree, "work"), 0o755))
	must(t, os.WriteFile(filepath.Join(tree, "upper/etc/bad\nname"), []byte("x"), 0o644))
	layer := filepath.Join(t.TempDir(), "layer.ext4")
	if out, err := exec.Command(toolPath(t, "mkfs.ext4"), "-q", "-d", tree, layer, "32M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 -d: %v\n%s", err, out)
	}
	flat := filepath.Join(t.TempDir(), "flat.ext4")
	err := realManager().Flatten(context.Background(), base, layer, flat)
	if err == nil || !strings.Contains(err.Error(), `"/etc/bad\nname"`) || !strings.Contains(err.Error(), "newline") {
		t.Errorf("err = %v, want one naming the file and the newline", err)
	}
	if _, err := os.Stat(flat); err == nil {
		t.Error("a flattened image was left")
	}
	if entries, _ := os.ReadDir(filepath.Dir(flat)); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}
