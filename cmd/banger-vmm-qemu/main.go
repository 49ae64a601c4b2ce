// Command banger-vmm-qemu serves Firecracker's HTTP API on a unix socket and
// boots the configured guest with QEMU's microvm machine. See docs/vmm-qemu.md.
package main

import (
	"os"

	"banger/internal/qemuvmm"
)

func main() {
	os.Exit(qemuvmm.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
