package bootstrap

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io/fs"
	"sort"
)

// GuestFile is a file, directory or symlink that the bootstrap writes into
// the root filesystem to make it honour banger's guest contract (see
// docs/images.md).
type GuestFile struct {
	Path     string // absolute path in the guest
	Mode     fs.FileMode
	Data     string
	Linkname string // for symlinks
}

// maskedUnits are systemd units that only slow a disposable VM's boot or
// wait for things that never come: apt's and other periodic timers,
// network-online waits, first-boot prompts on the console; file systems
// for kernel debugging, configfs and FUSE control and the modules behind
// them (each a mount or modprobe process, loaded on demand when used);
// the root's remount (the initramfs mounts it as it should be), the random
// seed (the VMM gives the guest an entropy source), system users (Debian's
// packages create theirs when installed) and the pstore archive.
func maskedUnits() []string {
	return []string{
		"dev-hugepages.mount", "sys-kernel-debug.mount", "sys-kernel-tracing.mount",
		"sys-kernel-config.mount", "sys-fs-fuse-connections.mount",
		"modprobe@configfs.service", "modprobe@dm_mod.service", "modprobe@fuse.service", "modprobe@loop.service",
		"systemd-remount-fs.service", "systemd-random-seed.service", "systemd-sysusers.service", "systemd-pstore.service",
		"apt-daily.service", "apt-daily.timer",
		"apt-daily-upgrade.service", "apt-daily-upgrade.timer",
		"dpkg-db-backup.service", "dpkg-db-backup.timer",
		"e2scrub_all.service", "e2scrub_all.timer", "e2scrub_reap.service",
		"fstrim.service", "fstrim.timer",
		"man-db.service", "man-db.timer",
		"systemd-networkd-wait-online.service",
		"ifupdown-wait-online.service",
		"systemd-udev-settle.service",
		"systemd-firstboot.service",
		"systemd-pcrphase.service", "systemd-pcrphase-sysinit.service",
		"getty@tty1.service",
		"modprobe@drm.service", "modprobe@efi_pstore.service",
	}
}

// maskedGenerators are systemd generators for features a banger guest does
// not have (GPT auto-mounts, hibernation, encrypted or verity volumes, SysV
// scripts, boot counting). Each costs a process start early in the boot,
// which is slow under software emulation.
func maskedGenerators() []string {
	return []string{
		"systemd-bless-boot-generator", "systemd-cryptsetup-generator",
		"systemd-gpt-auto-generator", "systemd-hibernate-resume-generator",
		"systemd-integritysetup-generator", "systemd-veritysetup-generator",
		"systemd-rc-local-generator", "systemd-system-update-generator",
		"systemd-sysv-generator",
		// serial-getty@ttyS0 is enabled outright; systemd.mask= and
		// systemd.run= on the command line are not banger's.
		"systemd-getty-generator", "systemd-debug-generator", "systemd-run-generator",
	}
}

const fstab = `# banger guest: the initramfs mounts the root (/dev/vda, label banger-root,
# or an overlay of the VM's layer on it) and the work disk (label
# banger-work) at /work when the VM has one, both rw,noatime, before
# systemd starts: nothing here waits for a device.
`

const sshdConfig = `# banger: root logs in with a key. Host keys are written into each VM's disk
# when it is created; only the ed25519 key is needed.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
# bangerd keeps one connection per VM for exec and cp: allow many commands
# on it at once (OpenSSH's default is 10).
MaxSessions 256
`

// sshdDropIn makes ssh.service adopt the sshd that banger's initramfs
// started before systemd (sshdStart), or start sshd as soon as systemd
// runs when there is none, beside the rest of the boot rather than after
// it: it needs the root file system and the network, which the initramfs
// set up, and the runtime directory systemd makes for it. Logins that come
// before logind runs get no login session (pam_systemd is optional). The
// configuration test before each start is left out (sshd checks its
// configuration as it starts), and a boot marker says when sshd accepts
// connections. sshd names itself in /run/sshd.pid, which is how systemd
// learns an adopted sshd's pid.
const sshdDropIn = `# banger: ssh.service adopts the sshd banger's initramfs started, or starts
# sshd as soon as systemd runs, beside the rest of the boot.
[Unit]
DefaultDependencies=no
Conflicts=shutdown.target
Before=shutdown.target

[Service]
Type=forking
PIDFile=/run/sshd.pid
ExecStartPre=
ExecStart=
ExecStart=/usr/lib/banger/sshd-start $SSHD_OPTS
ExecStartPost=-/bin/sh -c 'read -r up _ </proc/uptime; echo "<5>banger-boot: sshd $$up" >/dev/kmsg'
`

// sshdStart is ssh.service's start command. The first start of a boot
// adopts the sshd banger's initramfs started (marked by
// /run/banger-early-sshd) when it still listens: the process moves into
// the service's cgroup, and systemd reads its pid from the PID file. Any
// other start, or one that finds no such sshd, starts sshd as Debian does
// (-D), in the background: sshd does not daemonize when its parent is
// PID 1, so the script's exit is the forking, and systemd waits for the
// PID file sshd writes once it listens.
const sshdStart = `#!/bin/sh
# banger: ssh.service's start; adopts the sshd started before systemd.
if [ -e /run/banger-early-sshd ]; then
	rm -f /run/banger-early-sshd
	pid=$(cat /run/sshd.pid 2>/dev/null)
	if [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe")" = /usr/sbin/sshd ] &&
		tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q '\[listener\]'; then
		cg=$(sed -n 's/^0:://p' /proc/self/cgroup)
		if [ -n "$cg" ] && echo "$pid" >"/sys/fs/cgroup$cg/cgroup.procs"; then
			exit 0
		fi
		echo "banger: could not adopt the early sshd $pid; stopping it and starting another" >&2
		kill "$pid"
	fi
fi
rm -f /run/sshd.pid
/usr/sbin/sshd -D "$@" &
`

// tmpConf replaces Debian's "D /tmp" (empty /tmp at boot): banger's
// initramfs empties /tmp before sshd starts, and systemd-tmpfiles, which
// runs seconds after SSH answers, must not empty it under a command.
const tmpConf = `# banger: the initramfs empties /tmp at every boot, before SSH answers;
# here /tmp is only made sure to exist.
d /tmp 1777 root root -
`

const hostKeyUnit = `[Unit]
Description=Generate an SSH host key when none was injected (banger)
DefaultDependencies=no
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key

[Install]
WantedBy=ssh.service
`

const systemConf = `# banger: a disposable VM should stop quickly when asked.
[Manager]
DefaultTimeoutStopSec=10s
`

const hosts = `127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
`

// GuestFiles returns the files that make a Debian tree a banger guest, in
// path order.
func GuestFiles() []GuestFile {
	files := []GuestFile{
		{Path: "/etc/fstab", Mode: 0o644, Data: fstab},
		{Path: "/etc/hosts", Mode: 0o644, Data: hosts},
		{Path: "/etc/resolv.conf", Mode: 0o644, Data: "# written at boot by banger's initramfs from the ip= kernel argument\n"},
		{Path: "/etc/ssh/sshd_config.d/banger.conf", Mode: 0o644, Data: sshdConfig},
		{Path: "/etc/systemd/system/ssh.service.d/banger.conf", Mode: 0o644, Data: sshdDropIn},
		{Path: "/etc/systemd/system/default.target", Mode: fs.ModeSymlink | 0o777, Linkname: "/lib/systemd/system/multi-user.target"},
		{Path: "/etc/systemd/system/banger-ssh-hostkey.service", Mode: 0o644, Data: hostKeyUnit},
		{Path: "/etc/systemd/system/ssh.service.wants/banger-ssh-hostkey.service", Mode: fs.ModeSymlink | 0o777, Linkname: "/etc/systemd/system/banger-ssh-hostkey.service"},
		{Path: "/etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service", Mode: fs.ModeSymlink | 0o777, Linkname: "/lib/systemd/system/serial-getty@.service"},
		{Path: "/etc/systemd/system.conf.d/banger.conf", Mode: 0o644, Data: systemConf},
		{Path: "/usr/lib/banger/sshd-start", Mode: 0o755, Data: sshdStart},
		{Path: "/etc/tmpfiles.d/tmp.conf", Mode: 0o644, Data: tmpConf},
		// Keep the kernel's interface names (eth0), which ip= refers to.
		{Path: "/etc/systemd/network/99-default.link", Mode: fs.ModeSymlink | 0o777, Linkname: "/dev/null"},
		{Path: "/work", Mode: fs.ModeDir | 0o755},
	}
	for _, u := range maskedUnits() {
		files = append(files, GuestFile{Path: "/etc/systemd/system/" + u, Mode: fs.ModeSymlink | 0o777, Linkname: "/dev/null"})
	}
	for _, g := range maskedGenerators() {
		files = append(files, GuestFile{Path: "/etc/systemd/system-generators/" + g, Mode: fs.ModeSymlink | 0o777, Linkname: "/dev/null"})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files
}

// GuestTar returns files as a tar archive (root-owned, zero timestamps)
// for mmdebstrap's tar-in hook. Parent directories are created as needed.
func GuestTar(files []GuestFile) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	var mkdirs func(dir string) error
	mkdirs = func(dir string) error {
		if dir == "/" || dir == "." || dirs[dir] {
			return nil
		}
		if err := mkdirs(parentDir(dir)); err != nil {
			return err
		}
		dirs[dir] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "." + dir + "/", Mode: 0o755, Format: tar.FormatPAX})
	}
	for _, f := range files {
		if err := mkdirs(parentDir(f.Path)); err != nil {
			return nil, fmt.Errorf("writing guest tar: %w", err)
		}
		h := &tar.Header{Name: "." + f.Path, Mode: int64(f.Mode.Perm()), Format: tar.FormatPAX}
		switch {
		case f.Mode.IsDir():
			if dirs[f.Path] {
				continue
			}
			dirs[f.Path] = true
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		case f.Mode&fs.ModeSymlink != 0:
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.Linkname
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("writing guest tar entry %s: %w", f.Path, err)
		}
		if _, err := tw.Write([]byte(f.Data)); err != nil {
			return nil, fmt.Errorf("writing guest tar entry %s: %w", f.Path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("writing guest tar: %w", err)
	}
	return buf.Bytes(), nil
}

func parentDir(p string) string {
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return "/"
}
