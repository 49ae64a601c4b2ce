#!/bin/sh
# Build the banger Debian package with dpkg-deb from the binaries in
# BINDIR: the tree install-tree.sh lays out under /usr, a generated
# changelog, copyright, md5sums and the maintainer scripts.
#
# Usage: build-deb.sh BINDIR VERSION OUTDIR [RUNTIME]   (prints the .deb's path)
set -eu
bindir=$1 version=$2 outdir=$3 runtime=${4:-}
here=$(cd "$(dirname "$0")" && pwd)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/root"

sh "$here/install-tree.sh" "$bindir" "$root" /usr $runtime
doc="$root/usr/share/doc/banger"
install -m 0644 "$here/debian/copyright" "$doc/copyright"
date=$(date -R -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}")
printf 'banger (%s) unstable; urgency=medium\n\n  * Built from the banger source tree.\n\n -- banger developers <banger@example.com>  %s\n' \
	"$version" "$date" | gzip -9n >"$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"

install -d -m 0755 "$root/DEBIAN"
size=$(du -k -s --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
	"$here/debian/control.in" >"$root/DEBIAN/control"
for s in prerm postrm postinst; do
	install -m 0755 "$here/debian/$s" "$root/DEBIAN/$s"
done
(cd "$root" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"

mkdir -p "$outdir"
deb="$outdir/banger_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
