// Package qemuvmm implements banger-vmm-qemu: a server that speaks the part of
// Firecracker's HTTP API that firecracker-go-sdk drives (machine config, boot
// source, drives, network interfaces, logger, metrics, MMDS, actions) on a
// unix socket, and boots the configured guest with QEMU's microvm machine
// when it receives InstanceStart.
//
// The package never runs programs itself: QEMU is started through
// banger/internal/system, and its argv is built by BuildArgv as plain data.
// Acceleration is chosen by ProbeAccel (KVM when it can run a stock guest,
// TCG otherwise). QEMU is controlled through its QMP socket for power-down,
// pause/resume and block-device resize.
package qemuvmm
