# banger's re-identification of a cloned guest (docs/snapshots.md). The
# guest still answers as the VM it was cloned from, at that VM's address,
# while that VM is paused or saved. This gives it the host's time, fresh
# entropy, its own machine-id, hostname, hosts file and SSH host key, and
# then, once this session has ended, its own MAC and address.
# Arguments: hostname domain address/prefix gateway mac machine-id
# entropy(hex) host-public-key time(unix seconds with nanoseconds); the
# host private key comes on stdin.
# It loads no module (not even strict or warnings, which the tests turn
# on): each costs more than the rest of the program in a guest just
# restored under emulation.
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
# The kernel announces the address when the MAC changes (gratuitous
# ARP): the host may still map it to the MAC of a VM that had it before,
# and would send the daemon's SSH there until that entry expired (~50 s).
poke("/proc/sys/net/ipv4/conf/$dev/arp_notify", "1");

# The address moves once the daemon has closed this connection, having
# read this command's exit status; then the daemon waits for the new host
# key at the new address. sshd needs no restart: each connection's sshd is
# a fresh exec (OpenSSH's re-exec) that reads the host key files anew.
my $pid = fork() // die "banger-reidentify: fork: $!\n";
if ($pid == 0) {
	setpgrp(0, 0);
	open(STDIN, "<", "/dev/null");
	open(STDOUT, ">", "/dev/null");
	open(STDERR, ">", "/dev/null");
	wait_closed();
	# IPv6 goes off meanwhile and comes back with a link-local address
	# made from the new MAC: the old one is the source VM's.
	my $v6 = "/proc/sys/net/ipv6/conf/$dev/disable_ipv6";
	poke($v6, "1");
	open(my $ip, "|-", "ip", "-4", "-force", "-batch", "-") or exit 1;
	# The MAC changes with the link up (virtio-net allows it) and after
	# the new address is in place, so that its announcement is of the
	# new address only: the old one is the source VM's.
	print $ip "addr flush dev $dev\n", "neigh flush dev $dev\n", "addr add $cidr dev $dev\n",
		"link set dev $dev address $mac\n", "route replace default via $gw dev $dev\n";
	close($ip);
	poke($v6, "0");
	exit 0;
}
print "banger-reidentify: $name takes $cidr ($mac) on $dev\n";

# wait_closed returns once this SSH connection (SSH_CONNECTION) is no
# longer established, or after 5 s; 0.2 s when it cannot tell.
sub wait_closed {
	my @conn = split " ", ($ENV{SSH_CONNECTION} // "");
	if (@conn != 4) {
		select(undef, undef, undef, 0.2);
		return;
	}
	my ($peer, $port) = (sprintf(":%04X", $conn[1]), sprintf(":%04X", $conn[3]));
	for (1 .. 500) {
		open(my $t, "<", "/proc/net/tcp") or last;
		my $open = 0;
		while (<$t>) {
			my @f = split;
			if (@f > 3 && substr($f[1], -5) eq $port && substr($f[2], -5) eq $peer && $f[3] eq "01") { $open = 1; last }
		}
		close($t);
		return unless $open;
		select(undef, undef, undef, 0.01);
	}
}

# put writes a file whole: through a temporary file renamed over it, or
# in place when mode is undef (files under /proc).
sub put {
	my ($path, $mode, $data) = @_;
	my $tmp = defined $mode ? "$path.banger" : $path;
	my $f;
	if (defined $mode) {
		# Made with its final mode: a private key is never readable.
		unlink($tmp);
		sysopen($f, $tmp, 01 | 0100 | 01000, $mode) # O_WRONLY | O_CREAT | O_TRUNC or die "banger-reidentify: writing $path: $!\n";
	} else {
		open($f, ">", $tmp) or die "banger-reidentify: writing $path: $!\n";
	}
	print $f $data;
	close($f) or die "banger-reidentify: writing $path: $!\n";
	return unless defined $mode;
	chmod($mode, $tmp) or die "banger-reidentify: chmod $path: $!\n";
	rename($tmp, $path) or die "banger-reidentify: renaming $tmp: $!\n";
}

# poke writes a kernel setting, if the kernel has it.
sub poke {
	my ($path, $value) = @_;
	open(my $f, ">", $path) or return;
	print $f $value;
	close($f);
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
