// Package hostsetup is `sudo banger system setup`: the one privileged step
// that lets a user who is not root run banger. For that user it records an
// allocation (package allocation), installs the privileged helper where no
// user can write, writes a sudoers rule that lets the user run exactly that
// helper without a password, adds the user to the group of /dev/kvm, and
// gives the user the subordinate uid/gid range `mmdebstrap --mode=unshare`
// needs. Every step checks before it acts, so running it again changes
// nothing; Remove undoes all of it, tearing down the user's bridge, TAPs,
// NAT chains and resolver settings first. Every system path is an Options
// field, so tests point them into temporary directories.
package hostsetup
