#!/bin/sh
# banger's setup of the default image: `banger image build` runs it as root
# right after installing the default manifest (default.txt), before the
# build's own --run scripts. Its content counts in the default manifest's
# sha256, so changing it marks images built from the default manifest
# stale.
#
# Docker keeps its images and containers on the VM's work disk, /work/docker
# (ext4, the VM's own; --disk sizes it and `banger vm resize --disk` grows it
# while the VM runs). On hosts whose data directory does not reflink (ext4,
# tmpfs) a VM's root file system is an overlay of the shared image and the
# VM's own layer, where Docker cannot work: its overlay2 storage cannot sit
# on an overlay (it falls back to devicemapper or vfs), and renaming a
# directory the image holds fails with EXDEV, which stops dockerd at start
# when the image carries the build VM's /var/lib/docker.
set -eu

if ! command -v dockerd >/dev/null 2>&1; then
	echo "docker is not installed: nothing to set up"
	exit 0
fi

if [ -e /etc/docker/daemon.json ]; then
	echo "keeping the existing /etc/docker/daemon.json: docker's data stays where it says"
else
	mkdir -p /etc/docker
	cat >/etc/docker/daemon.json <<'JSON'
{
  "data-root": "/work/docker"
}
JSON
	echo "docker's data root is /work/docker, on the VM's work disk"
fi

# The work disk is mounted with nofail: docker waits for it, and does not
# start (rather than fill the root) without it.
mkdir -p /etc/systemd/system/docker.service.d
cat >/etc/systemd/system/docker.service.d/banger-work.conf <<'UNIT'
# Written by banger's default image setup: docker's data root is on the
# VM's work disk (/etc/docker/daemon.json).
[Unit]
RequiresMountsFor=/work
UNIT

# The build VM's docker ran from the package's own start-up: its state
# (networks, the runtimes directory, buildkit) is not the image's.
systemctl stop docker.socket docker.service 2>/dev/null || true
rm -rf /var/lib/docker
echo "removed the build VM's /var/lib/docker"
