// Package archive moves file trees between the host and a guest as streamed
// tar archives, as `banger vm cp` needs: Write archives a host path (modes,
// symlinks as links, hard links, empty directories, sparse files without
// their holes), Extract unpacks a stream that may be hostile into a host
// destination with os.Root so that nothing lands outside it, and the
// guest-side tar command lines and the docker cp naming rules are built
// here as plain values. The guest runs GNU tar; this package never starts
// a process.
package archive
