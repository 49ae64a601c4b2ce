# banger's re-identification of a cloned guest, run by bangerd over SSH
# right after the clone was restored from another VM's snapshot, while
# that VM is paused or saved. It gives the running guest its own identity
# and then its own address; until then it answers as the VM it was cloned
# from. Arguments: hostname domain address/prefix gateway mac machine-id
# entropy(hex) host-public-key; the host private key comes on stdin.
set -eu
name=$1 domain=$2 cidr=$3 gw=$4 mac=$5 mid=$6 entropy=$7 pub=$8
addr=${cidr%/*}
for tool in ip perl; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "banger-reidentify: the guest has no $tool; a clone needs iproute2 and perl-base" >&2
		exit 3
	}
done
# Fresh entropy, credited, and the kernel's generator reseeded from it:
# both guests left the snapshot with the same generator state.
perl -e '
	open(my $f, ">", "/dev/urandom") or die "opening /dev/urandom: $!\n";
	my $d = pack("H*", $ARGV[0]);
	ioctl($f, 0x40085203, pack("ii", 8 * length($d), length($d)) . $d) or die "RNDADDENTROPY: $!\n";
	ioctl($f, 0x5207, 0) or die "RNDRESEEDCRNG: $!\n";
' "$entropy"
umask 022
printf '%s\n' "$mid" >/etc/machine-id.banger && chmod 444 /etc/machine-id.banger && mv -f /etc/machine-id.banger /etc/machine-id
printf '%s\n' "$name" >/etc/hostname
hostname "$name"
{
	printf '127.0.0.1\tlocalhost\n%s\t%s.%s %s\n' "$addr" "$name" "$domain" "$name"
	printf '::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n'
} >/etc/hosts.banger && mv -f /etc/hosts.banger /etc/hosts
(umask 077 && cat >/etc/ssh/ssh_host_ed25519_key.banger)
mv -f /etc/ssh/ssh_host_ed25519_key.banger /etc/ssh/ssh_host_ed25519_key
printf '%s\n' "$pub" >/etc/ssh/ssh_host_ed25519_key.pub
dev=$(ip -o route show default 2>/dev/null | sed -n 's/.* dev \([^ ]*\).*/\1/p' | head -n 1)
[ -n "$dev" ] || dev=eth0
# The address moves after this session has ended: the daemon waits for
# the new host key on the new address. sshd needs no restart: each
# connection's sshd is a fresh exec (OpenSSH's re-exec) that reads the
# host key files anew. The address is in place before the link comes up,
# and arp_notify makes the kernel announce it then (gratuitous ARP): the
# host may still map this address to the MAC of a VM that had it before,
# and would send the daemon's SSH there until that entry expired (~50 s).
setsid sh -c '
	sleep 0.2
	ip link set dev "$1" down
	ip link set dev "$1" address "$2"
	ip addr flush dev "$1"
	ip neigh flush dev "$1" 2>/dev/null
	ip addr add "$3" dev "$1"
	echo 1 >"/proc/sys/net/ipv4/conf/$1/arp_notify" 2>/dev/null || :
	ip link set dev "$1" up
	ip route replace default via "$4" dev "$1"
' banger-reidentify-net "$dev" "$mac" "$cidr" "$gw" </dev/null >/dev/null 2>&1 &
echo "banger-reidentify: $name takes $cidr ($mac) on $dev"
