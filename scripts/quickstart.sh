#!/bin/sh
# banger quickstart: on a fresh Debian or Ubuntu machine, install what banger
# needs, build it, bootstrap the default guest image if there is none,
# create a VM and run a command in it over SSH. Safe to run again.
#
#   sh scripts/quickstart.sh            # as root, or as a user with sudo
#
# As a user who is not root it runs `sudo bin/banger system setup` once:
# the one privileged step, which gives the user their own bridge, subnet
# and NAT chains and a tiny helper that may change only those (see
# docs/security.md). Everything else runs as the user.
#
# Environment:
#   BANGER_QUICKSTART_VM     name of the VM to create (default: quickstart)
#   BANGER_QUICKSTART_NETNS  run banger (daemon, VMs, networking) inside this
#                            existing network namespace; the test suite uses
#                            it so that nothing touches the host's network
#   BANGER_QUICKSTART_SKIP_APT=1    do not install packages
#   BANGER_QUICKSTART_SKIP_BUILD=1  use the binaries already in bin/
set -eu
cd "$(dirname "$0")/.."
vm=${BANGER_QUICKSTART_VM:-quickstart}

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ "${BANGER_QUICKSTART_SKIP_APT:-}" != 1 ]; then
	say "installing packages (qemu, mmdebstrap, e2fsprogs, iptables, openssh-client)"
	sudo_if_needed apt-get update -qq
	sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		qemu-system-x86 mmdebstrap debian-archive-keyring e2fsprogs iptables iproute2 openssh-client ca-certificates make >/dev/null
fi
command -v go >/dev/null || PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || { echo "quickstart: Go is not installed; install it from your distribution (golang) or go.dev/dl" >&2; exit 1; }

if [ "${BANGER_QUICKSTART_SKIP_BUILD:-}" != 1 ]; then
	say "building banger"
	make -s build
fi

if [ "$(id -u)" != 0 ] && [ ! -e "/etc/banger/users/$(id -un).json" ]; then
	say "setting banger up for $(id -un): once, with sudo (docs/security.md says what it grants)"
	sudo ./bin/banger system setup
fi

banger() {
	if [ -n "${BANGER_QUICKSTART_NETNS:-}" ]; then
		ip netns exec "$BANGER_QUICKSTART_NETNS" ./bin/banger "$@"
	else
		./bin/banger "$@"
	fi
}

if banger image show base >/dev/null 2>&1; then
	say "image base exists"
else
	say "bootstrapping the base image from Debian packages (about a minute the first time)"
	banger image bootstrap base
fi

if banger vm show "$vm" >/dev/null 2>&1; then
	say "starting $vm"
	banger vm start "$vm"
else
	say "creating $vm"
	banger vm create "$vm"
fi

say "running a command in $vm over SSH"
banger vm ssh "$vm" -- 'echo "hello from $(hostname): $(uname -sr)"'

say "done: 'bin/banger vm ssh $vm' gets you a shell; 'bin/banger vm rm -f $vm' removes it"
