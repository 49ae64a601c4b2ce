package bootstrap

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"banger/internal/vm"
)

func TestGuestTar(t *testing.T) {
	data, err := GuestTar(GuestFiles())
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(data))
	entries := map[string]*tar.Header{}
	contents := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := entries[h.Name]; dup {
			t.Errorf("duplicate entry %s", h.Name)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s owned by %d:%d, want root", h.Name, h.Uid, h.Gid)
		}
		b, _ := io.ReadAll(tr)
		entries[h.Name], contents[h.Name] = h, string(b)
	}
	for _, dir := range []string{"./etc/", "./etc/systemd/", "./etc/systemd/system/", "./work/"} {
		if h := entries[dir]; h == nil || h.Typeflag != tar.TypeDir {
			t.Errorf("directory %s missing", dir)
		}
	}
	links := map[string]string{
		"./etc/systemd/system/apt-daily.timer":                               "/dev/null",
		"./etc/systemd/system/systemd-networkd-wait-online.service":          "/dev/null",
		"./etc/systemd/network/99-default.link":                              "/dev/null",
		"./etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service": "/lib/systemd/system/serial-getty@.service",
		"./etc/systemd/system-generators/systemd-gpt-auto-generator":         "/dev/null",
		"./etc/systemd/system/systemd-remount-fs.service":                    "/dev/null",
		"./etc/systemd/system/default.target":                                "/lib/systemd/system/multi-user.target",
	}
	for name, target := range links {
		if h := entries[name]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != target {
			t.Errorf("%s: want symlink to %s, got %+v", name, target, h)
		}
	}
	// The initramfs mounts the root and /work: systemd waits for no
	// device and remounts nothing.
	for _, line := range strings.Split(contents["./etc/fstab"], "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			t.Errorf("fstab has an entry: %q", line)
		}
	}
	sshd := contents["./etc/systemd/system/ssh.service.d/banger.conf"]
	for _, want := range []string{"DefaultDependencies=no\n", "Before=shutdown.target\n", "ExecStartPre=\n", "banger-boot: sshd $$up"} {
		if !strings.Contains(sshd, want) {
			t.Errorf("ssh.service drop-in lacks %q:\n%s", want, sshd)
		}
	}
	if !strings.Contains(contents["./etc/systemd/system/banger-ssh-hostkey.service"], "DefaultDependencies=no\n") {
		t.Error("the host key unit waits for the rest of the boot, and sshd with it")
	}
	if !strings.Contains(contents["./etc/ssh/sshd_config.d/banger.conf"], "HostKey /etc/ssh/ssh_host_ed25519_key\n") {
		t.Error("sshd config does not pin the ed25519 host key")
	}
}

func TestMmdebstrapArgv(t *testing.T) {
	got := mmdebstrapArgv(debootstrapPlan{
		Suite: "bookworm", Mirror: "http://deb.debian.org/debian", Packages: []string{"udev", "linux-image-cloud-amd64", "busybox-static"},
		TreeDir: "/c/work/tree", DebCache: "/c/debs/bookworm", GuestTar: "/c/work/guest.tar",
	})
	want := []string{
		"mmdebstrap", "--mode=unshare", "--variant=apt", "--format=directory",
		"--include=busybox-static,linux-image-cloud-amd64,udev",
		"--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		"--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-include=/usr/share/doc/*/copyright",
		"--skip=download/empty", "--skip=essential/unlink",
		`--setup-hook=mkdir -p "$1/var/cache/apt/archives"`,
		"--setup-hook=sync-in /c/debs/bookworm /var/cache/apt/archives/",
		`--essential-hook=chroot "$1" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs && ln -s /bin/true "$1/usr/sbin/update-initramfs"`,
		"--customize-hook=sync-out /var/cache/apt/archives /c/debs/bookworm",
		`--customize-hook=rm -f "$1"/var/cache/apt/archives/*.deb`,
		`--customize-hook=chroot "$1" chown _apt:root /var/cache/apt/archives/partial /var/lib/apt/lists/partial`,
		"--customize-hook=tar-in /c/work/guest.tar /",
		`--customize-hook=rm -f "$1"/etc/ssh/ssh_host_* "$1/etc/hostname" && : > "$1/etc/machine-id"`,
		"bookworm", "/c/work/tree", "http://deb.debian.org/debian",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("argv mismatch (-want +got):\n%s", diff)
	}
}

func TestMirrorFromAptSources(t *testing.T) {
	deb822 := `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
`
	cases := []struct {
		name  string
		files map[string][]byte
		want  string
	}{
		{"deb822", map[string][]byte{"/etc/apt/sources.list.d/debian.sources": []byte(deb822)}, "http://deb.debian.org/debian"},
		{"security first", map[string][]byte{"/etc/apt/sources.list": []byte("deb http://security.debian.org/debian-security bookworm-security main\ndeb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm main\n")}, "http://mirror.example/debian"},
		{"disabled and foreign skipped", map[string][]byte{
			"/etc/apt/sources.list.d/a.list.disabled": []byte("deb http://other.example/debian bookworm main\n"),
			"/etc/apt/sources.list.d/cloud.list":      []byte("deb https://packages.cloud.google.com/apt cloud-sdk main\n"),
		}, ""},
		{"ubuntu", map[string][]byte{"/etc/apt/sources.list": []byte("deb http://archive.ubuntu.com/ubuntu jammy main\n")}, ""},
		{"enabled no", map[string][]byte{"/x.sources": []byte("Types: deb\nURIs: http://m.example/debian\nEnabled: no\n")}, ""},
	}
	for _, c := range cases {
		if got := MirrorFromAptSources(c.files); got != c.want {
			t.Errorf("%s: mirror = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestMountsUnder(t *testing.T) {
	info := `22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
101 22 0:5 / /cache/work/tree/dev rw - devtmpfs udev rw
102 101 0:6 / /cache/work/tree/dev/pts rw - devpts devpts rw
103 22 0:20 / /cache/work/tree/proc rw - proc proc rw
104 22 0:21 / /cache/work/tree2/proc rw - proc proc rw
105 22 0:22 / /cache/work/tree/with\040space rw - tmpfs tmpfs rw
`
	got := MountsUnder([]byte(info), "/cache/work/tree")
	want := []string{"/cache/work/tree/with space", "/cache/work/tree/proc", "/cache/work/tree/dev/pts", "/cache/work/tree/dev"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}

func TestCheckTools(t *testing.T) {
	missing := func(string) (string, error) { return "", io.EOF }
	err := CheckTools(ModeRoot, missing)
	if err == nil || !strings.Contains(err.Error(), "install it with `apt-get install mmdebstrap`") ||
		!strings.Contains(err.Error(), "`apt-get install e2fsprogs`") {
		t.Errorf("CheckTools(root) with nothing installed = %v", err)
	}
	if strings.Contains(err.Error(), "uidmap") {
		t.Errorf("CheckTools(root) asks for uidmap: %v", err)
	}
	err = CheckTools(ModeRootless, missing)
	for _, want := range []string{"newuidmap is missing", "newgidmap is missing", "`apt-get install uidmap`", "`apt-get install util-linux`"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckTools(rootless) with nothing installed lacks %q: %v", want, err)
		}
	}
	present := func(n string) (string, error) { return "/usr/bin/" + n, nil }
	for _, m := range []Mode{ModeRoot, ModeRootless} {
		if err := CheckTools(m, present); err != nil {
			t.Errorf("CheckTools(%s) with tools present = %v", m, err)
		}
	}
}

// TestBootMarkers: the initramfs and sshd print the boot marks the
// daemon's timeline reads from the console, in the form it parses.
func TestBootMarkers(t *testing.T) {
	init, err := RenderInit("6.1.0-test", DefaultModules())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(init, "k=/dev/kmsg\n") || !strings.Contains(init, `echo "<5>`+vm.BootMarkerPrefix+`$1 $up" >$k`) {
		t.Error("init's mark function does not print vm.BootMarkerPrefix through /dev/kmsg")
	}
	for _, m := range []string{vm.MarkInitramfs, vm.MarkSwitchRoot, vm.MarkSSHD} {
		if !strings.Contains(init, "\n"+"\tmark "+m+"\n") && !strings.Contains(init, "\nmark "+m+"\n") {
			t.Errorf("init does not mark %s", m)
		}
	}
	// The marks need the initramfs's /proc: they come before it goes.
	if strings.LastIndex(init, "mark "+vm.MarkSwitchRoot) > strings.Index(init, "umount /sys /proc") {
		t.Error("init marks switch-root after unmounting /proc")
	}
	var sshd string
	for _, f := range GuestFiles() {
		if f.Path == "/etc/systemd/system/ssh.service.d/banger.conf" {
			sshd = f.Data
		}
	}
	// systemd turns $$ into $.
	if !strings.Contains(sshd, `echo "<5>`+vm.BootMarkerPrefix+vm.MarkSSHD+` $$up" >/dev/kmsg`) {
		t.Errorf("sshd's drop-in does not mark %s:\n%s", vm.MarkSSHD, sshd)
	}
}
