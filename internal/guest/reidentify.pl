# banger's re-identification of a cloned guest (docs/snapshots.md). The
# guest still answers as the VM it was cloned from, at that VM's address,
# while that VM is paused or saved. This gives it the host's time, fresh
# entropy, its own machine-id, hostname, hosts file and SSH host key, and
# then, once the daemon has its answer, its own MAC and address.
#
# It runs one of two ways:
# - over SSH: arguments hostname domain address/prefix gateway mac
#   machine-id entropy(hex) host-public-key time(unix seconds with
#   nanoseconds); the host private key comes on stdin.
# - as the identity agent of a warm template: `--listen ADDRESS PORT`, with
#   a token on stdin. It binds, says so and leaves a process that waits for
#   one connection that starts with the token, followed by the nine
#   arguments above, one per line, and the private key; it answers on that
#   connection and ends with "ok". Every clone restored from the template
#   finds it waiting, so the daemon needs no SSH handshake to reach it.
# With BANGER_REIDENTIFY_DRY set, it says what it would do instead.
#
# It loads no module (not even strict or warnings, which the tests turn
# on): each costs more than the rest of the program in a guest just
# restored under emulation.
my $dry = $ENV{BANGER_REIDENTIFY_DRY};

if (@ARGV && $ARGV[0] eq "--listen") {
	agent($ARGV[1], $ARGV[2]);
	exit 0;
}
my $key = do { local $/; <STDIN> };
my @new = reidentify(\*STDOUT, $key, @ARGV);
# The address moves once the daemon has closed this connection, having
# read this command's exit status; then the daemon waits for the new host
# key at the new address. sshd needs no restart: each connection's sshd is
# a fresh exec (OpenSSH's re-exec) that reads the host key files anew.
my $pid = fork() // die "banger-reidentify: fork: $!\n";
if ($pid == 0) {
	detach();
	wait_closed();
	move(undef, @new);
	exit 0;
}
exit 0;

# agent binds the listening socket (a failure is the caller's to see),
# then leaves a detached process serving it until one connection brought
# the token and an identity.
sub agent {
	my ($laddr, $lport) = @_;
	my $token = <STDIN>;
	defined $token or die "banger-reidentify: no token on stdin\n";
	chomp $token;
	length($token) >= 32 or die "banger-reidentify: the token is too short\n";
	my @octets = split /\./, $laddr // "";
	(@octets == 4 && $lport =~ /^\d+$/) or die "banger-reidentify: --listen ADDRESS PORT\n";
	# AF_INET 2, SOCK_STREAM 1; SOL_SOCKET 1, SO_REUSEADDR 2.
	socket(my $l, 2, 1, 0) or die "banger-reidentify: socket: $!\n";
	setsockopt($l, 1, 2, pack("i", 1));
	bind($l, pack("S n C4 x8", 2, $lport, @octets)) or die "banger-reidentify: binding $laddr:$lport: $!\n";
	listen($l, 8) or die "banger-reidentify: listen: $!\n";
	my $pid = fork() // die "banger-reidentify: fork: $!\n";
	if ($pid) {
		print "banger-reidentify: waiting for an identity on $laddr:$lport (pid $pid)\n";
		return;
	}
	detach();
	$SIG{PIPE} = "IGNORE";
	# The ip process that moves the address starts now, in the template:
	# started in a clone just restored under emulation it would take a
	# quarter of a second more (loading and linking a program).
	my $ip = $dry ? undef : ip_batch();
	while (1) {
		accept(my $c, $l) or next;
		select((select($c), $| = 1)[0]);
		# Two seconds to say who it is, ten for the rest: a peer that says
		# nothing cannot hold the agent.
		my ($got, @args, $pem);
		eval {
			local $SIG{ALRM} = sub { die "timeout\n" };
			alarm 2;
			$got = <$c>;
			alarm 10;
			if (same($got, "$token\n")) {
				for (1 .. 9) {
					my $a = <$c>;
					defined $a or die "short request\n";
					chomp $a;
					push @args, $a;
				}
				$pem = do { local $/; <$c> };
			}
			alarm 0;
		};
		alarm 0;
		if (!same($got, "$token\n")) {
			print $c "error: denied\n";
			close($c);
			next;
		}
		if ($@) {
			print $c "error: reading the identity: $@";
			close($c);
			next;
		}
		my @new = eval { reidentify($c, $pem, @args) };
		if ($@) {
			print $c "error: $@";
			close($c);
			next;
		}
		print $c "ok\n";
		close($c);
		close($l);
		move($ip, @new);
		exit 0;
	}
}

# same compares a peer's token with ours in time that does not depend on
# where they differ.
sub same {
	my ($got, $want) = @_;
	return defined $got && length($got) == length($want) && ($got ^ $want) !~ /[^\0]/;
}

# reidentify gives the guest the identity in its arguments, saying what it
# does on $out, and returns what move needs.
sub reidentify {
	my ($out, $key, @args) = @_;
	my ($name, $domain, $cidr, $gw, $mac, $mid, $entropy, $pub, $when) = @args;
	defined $when or die "banger-reidentify: 9 arguments expected\n";
	defined $key && length $key or die "banger-reidentify: no host key\n";
	my ($addr) = split m{/}, $cidr;

	# The host's time first, so that the little this takes is all it lags.
	my ($sec, $nsec) = $when =~ /^(\d+)\.(\d{9})$/ or die "banger-reidentify: bad time $when\n";
	set_clock($out, $sec, $nsec);

	# Fresh entropy, credited, and the kernel's generator reseeded from it:
	# every clone left the snapshot with the same generator state.
	if ($dry) {
		print $out "would credit ", length($entropy) / 2, " bytes of entropy\n";
	} else {
		open(my $f, ">", "/dev/urandom") or die "banger-reidentify: opening /dev/urandom: $!\n";
		my $d = pack("H*", $entropy);
		ioctl($f, 0x40085203, pack("ii", 8 * length($d), length($d)) . $d) or die "banger-reidentify: RNDADDENTROPY: $!\n";
		ioctl($f, 0x5207, 0) or die "banger-reidentify: RNDRESEEDCRNG: $!\n";
	}

	umask 022;
	put($out, "/etc/machine-id", 0444, "$mid\n");
	put($out, "/etc/hostname", 0644, "$name\n");
	put($out, "/proc/sys/kernel/hostname", undef, $name);
	put($out, "/etc/hosts", 0644, "127.0.0.1\tlocalhost\n$addr\t$name.$domain $name\n"
		. "::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n");
	put($out, "/etc/ssh/ssh_host_ed25519_key", 0600, $key);
	put($out, "/etc/ssh/ssh_host_ed25519_key.pub", 0644, "$pub\n");

	# The interface of the default route.
	my $dev = "eth0";
	if (open(my $r, "<", "/proc/net/route")) {
		while (<$r>) {
			my @f = split;
			if (@f > 2 && $f[1] eq "00000000") { $dev = $f[0]; last }
		}
	}
	# The kernel announces the address when the MAC changes (gratuitous
	# ARP): the host may still map it to the MAC of a VM that had it
	# before, and would send the daemon's SSH there until that entry
	# expired (~50 s).
	poke($out, "/proc/sys/net/ipv4/conf/$dev/arp_notify", "1");
	print $out "banger-reidentify: $name takes $cidr ($mac) on $dev\n";
	return ($dev, $cidr, $mac, $gw);
}

# ip_batch starts `ip -batch` reading commands from the returned handle.
sub ip_batch {
	open(my $ip, "|-", "ip", "-4", "-force", "-batch", "-") or return undef;
	return $ip;
}

# move gives the interface its new address and MAC, in one ip process:
# $ip when one was started already.
sub move {
	my ($ip, $dev, $cidr, $mac, $gw) = @_;
	return if $dry;
	# IPv6 goes off meanwhile and comes back with a link-local address
	# made from the new MAC: the old one is the source VM's.
	my $v6 = "/proc/sys/net/ipv6/conf/$dev/disable_ipv6";
	poke(undef, $v6, "1");
	$ip //= ip_batch() or exit 1;
	# The MAC changes with the link up (virtio-net allows it) and after
	# the new address is in place, so that its announcement is of the
	# new address only: the old one is the source VM's.
	print $ip "addr flush dev $dev\n", "neigh flush dev $dev\n", "addr add $cidr dev $dev\n",
		"link set dev $dev address $mac\n", "route replace default via $gw dev $dev\n";
	close($ip);
	poke(undef, $v6, "0");
}

# detach leaves the caller's session and output behind.
sub detach {
	setpgrp(0, 0);
	$SIG{HUP} = "IGNORE";
	open(STDIN, "<", "/dev/null");
	open(STDOUT, ">", "/dev/null");
	open(STDERR, ">", "/dev/null");
}

# set_clock sets the clock with clock_settime(2) where the system call's
# number is known, else with date(1): a program started in a guest just
# restored under emulation costs a tenth of a second.
sub set_clock {
	my ($out, $sec, $nsec) = @_;
	if ($dry) {
		print $out "would set the clock to $sec.$nsec\n";
		return;
	}
	if (open(my $a, "<", "/proc/sys/kernel/arch")) {
		my $arch = <$a> // "";
		chomp $arch;
		# clock_settime is 227 on x86_64; CLOCK_REALTIME is 0.
		return if $arch eq "x86_64" && syscall(227, 0, pack("q q", $sec, $nsec)) == 0;
	}
	run("date", "-u", "-s", "\@$sec.$nsec");
}

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
	my ($out, $path, $mode, $data) = @_;
	if ($dry) {
		printf $out "would write %s (%s, %d bytes)\n", $path, defined $mode ? sprintf("%04o", $mode) : "in place", length $data;
		return;
	}
	my $tmp = defined $mode ? "$path.banger" : $path;
	my $f;
	if (defined $mode) {
		# Made with its final mode: a private key is never readable.
		unlink($tmp);
		sysopen($f, $tmp, 01 | 0100 | 01000, $mode) # O_WRONLY | O_CREAT | O_TRUNC
			or die "banger-reidentify: writing $path: $!\n";
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
	my ($out, $path, $value) = @_;
	if ($dry) {
		print $out "would set $path to $value\n" if $out;
		return;
	}
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
