// Package system is banger's one approved layer for touching the host through
// other programs: it runs commands (directly as root, or through `sudo -n`
// otherwise), starts detached processes in their own session, and reads
// process facts from /proc. Every other package reaches the host through the
// small interfaces defined here, so tests can substitute the fakes beside them.
package system
