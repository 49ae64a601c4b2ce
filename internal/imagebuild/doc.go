// Package imagebuild is banger's native image builder: the parts of
// `banger image build` and `banger image commit` that are not VM
// lifecycle. It parses package files and --copy/--run arguments, turns a
// build into an ordered list of provisioning steps run over one SSH
// connection to a booted temporary VM (streamed tar uploads, apt-get
// installs, kernel modules, scripts with streamed output), writes the build
// log with per-step timings, and commits a stopped VM's root disk into an
// image directory: identity scrubbed, the base image's kernel and initrd
// linked beside it, and a package-manifest sidecar.
//
// The daemon owns the temporary VM (create, boot, stop, remove, each step
// with its undo); this package runs no processes itself: guest commands go
// through a Conn (internal/guest's SSH client) and disk work through
// DiskTools (internal/disk).
package imagebuild
