#!/bin/sh
# banger initramfs /init: load the virtio modules of this kernel, wait for
# the root disk, mount the work disk (label banger-work) when there is one,
# configure the network interface from the ip= kernel argument (Debian
# kernels lack CONFIG_IP_PNP), and switch_root into the real init. With
# banger.layer=DEV the root disk is a shared, read-only base and DEV the
# VM's own layer: the root becomes an overlay of the layer's /upper on the
# base. Add banger.debug to the kernel command line to get a shell instead
# of a kernel panic when something goes wrong.
export PATH=/bin
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
exec </dev/console >/dev/console 2>&1

# mark NAME prints a boot marker for banger's boot timeline through the
# kernel log, which stamps it with the kernel's clock (see vm.ParseConsole).
# Once /dev has moved to the root, its kmsg is there.
mark() {
	k=/dev/kmsg
	[ -e $k ] || k=/newroot/dev/kmsg
	read -r up _ </proc/uptime
	echo "<5>banger-boot: $1 $up" >$k
}
mark initramfs

cmdline=$(cat /proc/cmdline)
root=/dev/vda
rootfstype=ext4
rootflags=
mode=rw
ip=
init=/sbin/init
layer=
debug=
for arg in $cmdline; do
	case "$arg" in
	root=*) root=${arg#root=} ;;
	rootfstype=*) rootfstype=${arg#rootfstype=} ;;
	rootflags=*) rootflags=${arg#rootflags=} ;;
	ro) mode=ro ;;
	rw) mode=rw ;;
	ip=*) ip=${arg#ip=} ;;
	init=*) init=${arg#init=} ;;
	banger.layer=*) layer=${arg#banger.layer=} ;;
	banger.debug) debug=1 ;;
	esac
done

log() { echo "banger-init: $*"; }

fail() {
	log "$*"
	if [ -n "$debug" ]; then
		log "banger.debug is set: starting a shell"
		/bin/busybox --install -s /bin
		exec sh
	fi
	log "giving up (the kernel panics and the VM stops; add banger.debug for a shell)"
	exit 1
}

# load NAME FILE inserts a module, passing NAME.param=value kernel arguments
# as module parameters, the way modprobe would.
load() {
	params=
	for arg in $cmdline; do
		case "$arg" in
		"$1".*) params="$params ${arg#"$1".}" ;;
		esac
	done
	[ -d "/sys/module/$1" ] && return 0
	insmod "$2" $params || log "loading module $1 failed"
}

{{range .Modules}}load {{.Name}} {{.Path}}
{{end}}
# waitdev SPEC prints the device of SPEC (a path, LABEL=, UUID= or PARTUUID=),
# waiting up to 10 s for it to appear.
waitdev() {
	i=0
	while [ $i -lt 100 ]; do
		case "$1" in
		LABEL=* | UUID=* | PARTUUID=*) d=$(findfs "$1" 2>/dev/null) && [ -n "$d" ] && { echo "$d"; return 0; } ;;
		*) [ -b "$1" ] && { echo "$1"; return 0; } ;;
		esac
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

dev=$(waitdev "$root") || fail "root device $root did not appear within 10 s"
opts=$mode,noatime
[ -n "$rootflags" ] && opts="$opts,$rootflags"
if [ -z "$layer" ]; then
	mount -t "$rootfstype" -o "$opts" "$dev" /newroot || fail "mounting $dev on / failed"
else
	# The base is shared by every VM of its image: mount it read-only
	# whatever the command line says; this VM writes to its layer only.
	ldev=$(waitdev "$layer") || fail "layer device $layer did not appear within 10 s"
	mkdir -p /base /layer
	mount -t "$rootfstype" -o ro${rootflags:+,$rootflags} "$dev" /base || fail "mounting the base $dev failed"
	mount -t ext4 -o rw,noatime "$ldev" /layer || fail "mounting the layer $ldev failed"
	mkdir -p /layer/upper /layer/work
	# Flatten (image commit) applies whiteouts and opaque directories but
	# not redirects or metacopy: keep those off whatever the kernel defaults.
	mount -t overlay overlay -o lowerdir=/base,upperdir=/layer/upper,workdir=/layer/work,redirect_dir=off,metacopy=off,index=off /newroot ||
		fail "mounting the overlay of $ldev on $dev failed"
	mode=rw
fi

# The work disk: mounted here, where its device is known, rather than by
# systemd once udev has made its by-label link. A VM without one boots
# without it.
if wdev=$(findfs LABEL=banger-work 2>/dev/null) && [ -n "$wdev" ]; then
	mkdir -p /newroot/work 2>/dev/null
	mount -t ext4 -o rw,noatime "$wdev" /newroot/work || log "mounting the work disk $wdev on /work failed"
fi

# ip=<client>:<server>:<gateway>:<netmask>:<hostname>:<device>:<autoconf>:<dns0>:<dns1>
if [ -n "$ip" ] && [ "$ip" != off ] && [ "$ip" != none ]; then
	# A function's arguments are its own: /init's, which go on to the
	# real init, stay as they are.
	ipfields() { addr=$1 gw=$3 mask=$4 host=$5 ifc=${6:-eth0} dns0=$8 dns1=$9; }
	set -f
	oldifs=$IFS
	IFS=:
	ipfields $ip
	IFS=$oldifs
	set +f
	case "$addr" in
	dhcp | on | any | both | bootp | rarp) log "ip=$addr: automatic configuration is not supported, leaving the network to the guest" ;;
	*)
		i=0
		while [ ! -e "/sys/class/net/$ifc" ] && [ $i -lt 50 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		if [ -z "$addr" ]; then
			log "ip= has no address"
		elif ifconfig "$ifc" "$addr" ${mask:+netmask "$mask"} up; then
			[ -n "$gw" ] && { route add default gw "$gw" dev "$ifc" || log "adding default route via $gw failed"; }
		else
			log "configuring $ifc failed"
		fi
		;;
	esac
	[ -n "$host" ] && hostname "$host"
	if [ "$mode" = rw ] && [ -n "$dns0$dns1" ] && [ ! -L /newroot/etc/resolv.conf ]; then
		{
			echo "# written at boot by banger's initramfs from the ip= kernel argument"
			for ns in $dns0 $dns1; do echo "nameserver $ns"; done
		} >/newroot/etc/resolv.conf
	fi
fi

# /tmp is emptied at every boot here, before anything runs in the root:
# emptied by systemd-tmpfiles later in the boot (Debian's "D /tmp"), it
# would lose what a command that came in over SSH, which answers before
# systemd runs, had just put there. The guest's tmpfiles.d only makes sure
# /tmp exists.
empty_tmp() {
	[ "$mode" = rw ] && [ -d /newroot/tmp ] && [ ! -L /newroot/tmp ] || return 0
	rm -rf /newroot/tmp && mkdir -m 1777 /newroot/tmp || log "emptying /tmp failed"
}

# early_sshd starts the root file system's sshd before systemd, so that SSH
# answers while systemd boots the rest: it needs only the root, the
# network, its host key (written into the VM's disk when it was created),
# /proc, /dev/pts and a /run (with /run/lock), which it gets here as
# systemd mounts them
# (systemd keeps API file systems it finds mounted, as after dracut). The
# sshd keeps running across switch_root, and ssh.service adopts it when
# systemd starts the service (/usr/lib/banger/sshd-start). Without a host
# key, or on a read-only root, systemd starts sshd as before.
early_sshd() {
	[ "$mode" = rw ] && [ -x /newroot/usr/sbin/sshd ] && [ -s /newroot/etc/ssh/ssh_host_ed25519_key ] || return 0
	mkdir -p /newroot/dev/pts
	if ! mount -t proc -o nosuid,nodev,noexec proc /newroot/proc ||
		! mount -t devpts -o nosuid,noexec,mode=0620,gid=5 devpts /newroot/dev/pts ||
		! mount -t tmpfs -o nosuid,nodev,strictatime,mode=0755,size=20%,nr_inodes=800k tmpfs /newroot/run ||
		! mkdir -m 0755 /newroot/run/sshd ||
		! mkdir -m 1777 /newroot/run/lock; then
		log "preparing sshd's early start failed; systemd starts sshd"
		return 0
	fi
	: >/newroot/run/banger-early-sshd
	chroot /newroot /usr/sbin/sshd || { log "sshd did not start early; systemd starts it"; return 0; }
	# sshd writes its pid file once it listens.
	i=0
	while [ ! -s /newroot/run/sshd.pid ] && [ $i -lt 100 ]; do
		sleep 0.02
		i=$((i + 1))
	done
	mark sshd
}

[ -x "/newroot$init" ] || [ -L "/newroot$init" ] || fail "$init not found on the root filesystem"
mount --move /dev /newroot/dev
empty_tmp
early_sshd
mark switch-root
umount /sys /proc
exec switch_root /newroot "$init" "$@"
