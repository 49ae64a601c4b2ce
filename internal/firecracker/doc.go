// Package firecracker is banger's VMM driver. It turns a VM's launch Spec into
// firecracker-go-sdk configuration, starts the VMM binary (Firecracker, or
// banger-vmm-qemu, which speaks the same API) in its own session so that it
// outlives the daemon, configures and boots the guest through the VMM's HTTP
// API, and later re-attaches to, stops or kills that process, identified by
// its pid and start time. The SDK's logrus output stays inside this package,
// bridged to the caller's slog.Logger at debug level.
package firecracker
