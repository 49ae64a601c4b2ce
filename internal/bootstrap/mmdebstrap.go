package bootstrap

import (
	"bufio"
	"bytes"
	"net/url"
	"sort"
	"strings"
)

// basePackages are always installed: an init system, device manager, D-Bus
// (logind needs it to turn the ACPI power button into a clean poweroff), an
// SSH server, network tools, e2fsprogs (resize2fs grows /work while the VM
// runs) and the static busybox the initramfs is made of.
func basePackages() []string {
	return []string{"systemd-sysv", "udev", "dbus", "openssh-server", "iproute2", "netbase", "kmod", "e2fsprogs", "busybox-static"}
}

// debootstrapPlan holds the inputs of one mmdebstrap run.
type debootstrapPlan struct {
	Suite    string
	Mirror   string
	Packages []string // all packages to --include, kernel included
	TreeDir  string   // output directory
	DebCache string   // directory of cached .deb files, synced in and out
	GuestTar string   // tar of GuestFiles, unpacked over the tree
}

// mmdebstrapArgv returns the mmdebstrap command for p, the same in both
// Modes: unshare mode, which as root (real root, or root of the rootless
// mode's user namespace) unshares only the mount, pid, uts and ipc
// namespaces, so that an interrupted build leaves no mount behind. The
// kernel package pulls in an initramfs generator whose run would cost time
// and space for an initramfs banger does not use, so update-initramfs is
// diverted to /bin/true before the kernel is installed. Documentation and
// translations are left out of the image. Downloaded packages are kept in
// DebCache with mmdebstrap's documented sync-in/sync-out recipe. apt's
// partial directories belong to _apt, as apt makes them when its download
// sandbox can reach the tree; a rootless build in a home directory other
// users cannot enter downloads without the sandbox, and the chown keeps
// the image the same.
func mmdebstrapArgv(p debootstrapPlan) []string {
	pkgs := append([]string(nil), p.Packages...)
	sort.Strings(pkgs)
	argv := append(mmdebstrapHead(pkgs),
		"--dpkgopt=path-include=/usr/share/doc/*/copyright",
		"--skip=download/empty",
		"--skip=essential/unlink")
	argv = append(argv, debCacheSyncIn(p.DebCache)...)
	return append(argv,
		`--essential-hook=chroot "$1" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs && ln -s /bin/true "$1/usr/sbin/update-initramfs"`,
		debCacheSyncOut(p.DebCache),
		`--customize-hook=rm -f "$1"/var/cache/apt/archives/*.deb`,
		`--customize-hook=chroot "$1" chown _apt:root /var/cache/apt/archives/partial /var/lib/apt/lists/partial`,
		"--customize-hook=tar-in "+p.GuestTar+" /",
		`--customize-hook=rm -f "$1"/etc/ssh/ssh_host_* "$1/etc/hostname" && : > "$1/etc/machine-id"`,
		p.Suite,
		p.TreeDir,
		p.Mirror,
	)
}

// mmdebstrapHead starts the mmdebstrap command of every build: unshare
// mode, the apt variant with pkgs, a directory, and no manual pages,
// translations or documentation.
func mmdebstrapHead(pkgs []string) []string {
	return []string{
		"mmdebstrap",
		"--mode=unshare",
		"--variant=apt",
		"--format=directory",
		"--include=" + strings.Join(pkgs, ","),
		"--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		"--dpkgopt=path-exclude=/usr/share/doc/*",
	}
}

// debCacheSyncIn and debCacheSyncOut keep downloaded packages in dir,
// mmdebstrap's documented sync-in/sync-out recipe.
func debCacheSyncIn(dir string) []string {
	return []string{`--setup-hook=mkdir -p "$1/var/cache/apt/archives"`, "--setup-hook=sync-in " + dir + " /var/cache/apt/archives/"}
}

func debCacheSyncOut(dir string) string {
	return "--customize-hook=sync-out /var/cache/apt/archives " + dir
}

// DefaultMirror is used when the host's apt configuration names no Debian
// mirror.
const DefaultMirror = "http://deb.debian.org/debian"

// MirrorFromAptSources returns the first Debian archive URI configured in
// the given apt source files (one-line .list or deb822 .sources format),
// skipping security and non-Debian archives, or "" when there is none.
// Keys are file names, which decide the format; files are read in name
// order.
func MirrorFromAptSources(files map[string][]byte) string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		var uris []string
		switch {
		case strings.HasSuffix(n, ".list"):
			uris = listURIs(files[n])
		case strings.HasSuffix(n, ".sources"):
			uris = deb822URIs(files[n])
		}
		for _, u := range uris {
			if isDebianMirror(u) {
				return strings.TrimRight(u, "/")
			}
		}
	}
	return ""
}

func listURIs(data []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		i := 1
		if strings.HasPrefix(f[i], "[") { // options like [arch=amd64 signed-by=…]
			for i < len(f) && !strings.HasSuffix(f[i], "]") {
				i++
			}
			i++
		}
		if i < len(f) {
			out = append(out, f[i])
		}
	}
	return out
}

func deb822URIs(data []byte) []string {
	var out []string
	for _, stanza := range strings.Split(string(data), "\n\n") {
		fields := map[string]string{}
		for _, line := range strings.Split(stanza, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, " ") {
				fields[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
			}
		}
		if !strings.Contains(" "+fields["types"]+" ", " deb ") || strings.EqualFold(fields["enabled"], "no") {
			continue
		}
		out = append(out, strings.Fields(fields["uris"])...)
	}
	return out
}

func isDebianMirror(u string) bool {
	pu, err := url.Parse(u)
	if err != nil || (pu.Scheme != "http" && pu.Scheme != "https" && pu.Scheme != "file") {
		return false
	}
	p := strings.TrimRight(pu.Path, "/")
	return strings.HasSuffix(p, "/debian") && !strings.Contains(pu.Host, "security")
}
