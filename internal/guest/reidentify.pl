# banger's re-identification of a cloned guest (docs/snapshots.md). The
# guest still answers as the VM it was cloned from, at that VM's address,
# while that VM is paused or saved. This gives it the host's time, fresh
# entropy, its own machine-id, hostname, hosts file and SSH host key, and
# then, once this session has ended, its own MAC and address.
# Arguments: hostname domain address/prefix gateway mac machine-id
# entropy(hex) host-public-key time(unix seconds with nanoseconds); the
# host private key comes on stdin.
use strict;
use warnings;
use Fcntl qw(O_WRONLY O_CREAT O_TRUNC);
my ($name, $domain, $cidr, $gw, $mac, $mid, $entropy, $pub, $when) = @ARGV;
defined $when or die "banger-reidentify: 9 arguments expected\n";
my ($addr) = split m{/}, $cidr;

# The host's time first, so that the little this takes is all it lags.
my ($sec, $nsec) = $when =~ /^(\d+)\.(\d{9})$/ or die "banger-reidentify: bad time $when\n";
run("date", "-u", "-s", "\@$sec.$nsec");

# Fresh entropy, credited, and the kernel's generator reseeded from it:
# every clone left the snapshot with the same generator state.
{
	open(my $f, ">", "/dev/urandom") or die "banger-reidentify: opening /dev/urandom: $!\n";
	my $d = pack("H*", $entropy);
	ioctl($f, 0x40085203, pack("ii", 8 * length($d), length($d)) . $d) or die "banger-reidentify: RNDADDENTROPY: $!\n";
	ioctl($f, 0x5207, 0) or die "banger-reidentify: RNDRESEEDCRNG: $!\n";
}

umask 022;
put("/etc/machine-id", 0444, "$mid\n");
put("/etc/hostname", 0644, "$name\n");
put("/proc/sys/kernel/hostname", undef, $name);
put("/etc/hosts", 0644, "127.0.0.1\tlocalhost\n$addr\t$name.$domain $name\n"
	. "::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n");
my $key = do { local $/; <STDIN> };
defined $key && length $key or die "banger-reidentify: no host key on stdin\n";
put("/etc/ssh/ssh_host_ed25519_key", 0600, $key);
put("/etc/ssh/ssh_host_ed25519_key.pub", 0644, "$pub\n");

# The interface of the default route.
my $dev = "eth0";
if (open(my $r, "<", "/proc/net/route")) {
	while (<$r>) {
		my @f = split;
		if (@f > 2 && $f[1] eq "00000000") { $dev = $f[0]; last }
	}
}
# The kernel announces the address when the link comes up (gratuitous
# ARP): the host may still map it to the MAC of a VM that had it before,
# and would send the daemon's SSH there until that entry expired (~50 s).
put("/proc/sys/net/ipv4/conf/$dev/arp_notify", undef, "1");

# The address moves after this session has ended: the daemon waits for
# the new host key at the new address. sshd needs no restart: each
# connection's sshd is a fresh exec (OpenSSH's re-exec) that reads the
# host key files anew.
my $pid = fork() // die "banger-reidentify: fork: $!\n";
if ($pid == 0) {
	setpgrp(0, 0);
	open(STDIN, "<", "/dev/null");
	open(STDOUT, ">", "/dev/null");
	open(STDERR, ">", "/dev/null");
	select(undef, undef, undef, 0.2);
	open(my $ip, "|-", "ip", "-force", "-batch", "-") or exit 1;
	print $ip "link set dev $dev down\n", "link set dev $dev address $mac\n",
		"addr flush dev $dev\n", "neigh flush dev $dev\n", "addr add $cidr dev $dev\n",
		"link set dev $dev up\n", "route replace default via $gw dev $dev\n";
	close($ip);
	exit 0;
}
print "banger-reidentify: $name takes $cidr ($mac) on $dev\n";

# put writes a file whole: through a temporary file renamed over it, or
# in place when mode is undef (files under /proc).
sub put {
	my ($path, $mode, $data) = @_;
	my $tmp = defined $mode ? "$path.banger" : $path;
	my $f;
	if (defined $mode) {
		# Made with its final mode: a private key is never readable.
		unlink($tmp);
		sysopen($f, $tmp, O_WRONLY | O_CREAT | O_TRUNC, $mode) or die "banger-reidentify: writing $path: $!\n";
	} else {
		open($f, ">", $tmp) or die "banger-reidentify: writing $path: $!\n";
	}
	print $f $data;
	close($f) or die "banger-reidentify: writing $path: $!\n";
	return unless defined $mode;
	chmod($mode, $tmp) or die "banger-reidentify: chmod $path: $!\n";
	rename($tmp, $path) or die "banger-reidentify: renaming $tmp: $!\n";
}

# run runs a program with its output discarded and fails when it does.
sub run {
	my $pid = fork() // die "banger-reidentify: fork: $!\n";
	if ($pid == 0) {
		open(STDOUT, ">", "/dev/null");
		exec(@_) or exit 127;
	}
	waitpid($pid, 0);
	$? == 0 or die "banger-reidentify: @_ failed (status $?)\n";
}
