#!/bin/sh
# Lay out an installed banger under DESTDIR+PREFIX, the same tree for
# `make install` (PREFIX=/usr/local) and `make deb` (PREFIX=/usr):
#
#   bin/{banger,bangerd,banger-vmm-qemu,banger-helper}
#   lib/banger/                         runtime bundle (when ./runtime holds one)
#   lib/systemd/user/bangerd.service    systemd user unit
#   share/man/man1/banger*.1.gz         man pages from the Cobra tree
#   share/bash-completion/completions/banger
#   share/zsh/vendor-completions/_banger
#   share/fish/vendor_completions.d/banger.fish
#   share/banger/packages/              the default package manifest and setup script
#   share/doc/banger/                   README, docs
#
# Usage: install-tree.sh BINDIR DESTDIR PREFIX [RUNTIME]
#   BINDIR holds the built binaries; RUNTIME is the bundle directory
#   (default ./runtime), installed only when it holds a bundle.json.
set -eu
bindir=$1 destdir=$2 prefix=$3
root="$destdir$prefix"
here=$(cd "$(dirname "$0")/.." && pwd)
runtime=${4:-$here/runtime}

install -d "$root/bin" "$root/share/man/man1" "$root/lib/systemd/user" \
	"$root/share/bash-completion/completions" "$root/share/zsh/vendor-completions" \
	"$root/share/fish/vendor_completions.d" "$root/share/banger/packages" "$root/share/doc/banger/docs"
for b in banger bangerd banger-vmm-qemu banger-helper; do
	install -m 0755 "$bindir/$b" "$root/bin/$b"
done

man=$(mktemp -d)
trap 'rm -rf "$man"' EXIT
"$bindir/banger" internal man "$man"
for f in "$man"/*.1 "$here"/packaging/man/*.1; do
	gzip -9n -c "$f" >"$root/share/man/man1/$(basename "$f").gz"
	chmod 0644 "$root/share/man/man1/$(basename "$f").gz"
done

"$bindir/banger" completion bash >"$root/share/bash-completion/completions/banger"
"$bindir/banger" completion zsh >"$root/share/zsh/vendor-completions/_banger"
"$bindir/banger" completion fish >"$root/share/fish/vendor_completions.d/banger.fish"
chmod 0644 "$root/share/bash-completion/completions/banger" "$root/share/zsh/vendor-completions/_banger" \
	"$root/share/fish/vendor_completions.d/banger.fish"

sed -e "s|@BINDIR@|$prefix/bin|g" -e "s|@DOCDIR@|$prefix/share/doc/banger/docs|g" \
	"$here/packaging/bangerd.service.in" >"$root/lib/systemd/user/bangerd.service"
chmod 0644 "$root/lib/systemd/user/bangerd.service"

install -m 0644 "$here/packages/default.txt" "$root/share/banger/packages/"
install -m 0755 "$here/packages/default-setup.sh" "$root/share/banger/packages/"
install -m 0644 "$here/README.md" "$root/share/doc/banger/"
install -m 0644 "$here"/docs/*.md "$root/share/doc/banger/docs/"

if [ -f "$runtime/bundle.json" ]; then
	install -d "$root/lib/banger"
	cp -a --sparse=always "$runtime/." "$root/lib/banger/"
fi
