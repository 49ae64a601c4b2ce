#!/bin/sh
# Builds banger's microVM guest kernel inside the build tree (as its root):
# unpacks Debian's linux-source tarball, configures it from
# /banger/microvm.config on top of allnoconfig, checks that every option
# asked for holds, and builds vmlinux and bzImage into /banger/out.
set -eu
src=$(ls /usr/src/linux-source-*.tar.xz)
mkdir -p /banger/src /banger/out
tar -xJf "$src" -C /banger/src --strip-components=1
cd /banger/src
make -s ARCH=x86_64 allnoconfig KCONFIG_ALLCONFIG=/banger/microvm.config
missing=
for opt in $(grep '^CONFIG_' /banger/microvm.config); do
	grep -qx "$opt" .config || missing="$missing $opt"
done
if [ -n "$missing" ]; then
	echo "banger: the kernel configuration lacks:$missing" >&2
	exit 1
fi
make -s ARCH=x86_64 -j"$(getconf _NPROCESSORS_ONLN)" vmlinux bzImage
cp vmlinux /banger/out/vmlinux
cp arch/x86/boot/bzImage /banger/out/bzImage
cp .config /banger/out/config
make -s ARCH=x86_64 kernelrelease > /banger/out/release
dpkg-query -W -f '${Version}\n' 'linux-source-*' | head -n 1 > /banger/out/source-version
