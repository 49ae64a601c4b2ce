// Package runtimebundle handles banger's runtime bundle: the directory with
// the default VMM binary, guest kernel, vmlinux, initrd, base root
// filesystem and helpers that bangerd boots VMs from, described by
// bundle.json. It resolves where the bundle lives (a config override, then
// ./runtime in a source checkout, then ../lib/banger beside the installed
// binary), packages a bundle directory into a checksummed tar.gz archive
// with its runtime-bundle.toml manifest entry, installs an archive from a
// manifest (fetch, verify sha256, unpack, swap in atomically), and
// re-verifies an installed bundle against the checksums in its bundle.json.
package runtimebundle
