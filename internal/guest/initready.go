package guest

import _ "embed"

// InitReadyScript is a shell script that returns once the guest's init
// accepts commands. banger's initramfs starts sshd before systemd (docs
// images.md, the guest contract), so SSH answers a second or so before
// `systemctl` can reach systemd; a cold boot waits for both, so that a
// script's first command may use systemctl, and a build's package scripts
// may start services. It waits while PID 1 is still the initramfs's, then
// for systemd's private socket; a guest whose init is not systemd is ready
// at once. After 60 s it gives up and exits 1.
//
//go:embed initready.sh
var InitReadyScript string
