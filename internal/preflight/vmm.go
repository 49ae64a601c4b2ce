package preflight

import (
	"os"
	"path/filepath"
	"strings"

	"banger/internal/system"
)

// ResolveVMM turns the configured vmm into a binary path and its kind.
// "auto" picks Firecracker when it is installed and KVM can run a stock
// guest, and banger-vmm-qemu otherwise.
func ResolveVMM(configured string) (string, string) { return ResolveVMMWithBundle(configured, "") }

// ResolveVMMWithBundle is ResolveVMM with the runtime bundle's VMM (an
// absolute path, or ""), which "auto" prefers over the ones on PATH when it
// can run here (Firecracker needs KVM).
func ResolveVMMWithBundle(configured, bundleVMM string) (string, string) {
	if (configured == "" || configured == "auto") && bundleVMM != "" {
		if kind := kindOf(bundleVMM); kind == "qemu" || KVMUsable() == nil {
			return bundleVMM, kind
		}
	}
	find := func(name string) string {
		if self, err := os.Executable(); err == nil {
			p := filepath.Join(filepath.Dir(self), name)
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
		if p, err := system.LookPath(name); err == nil {
			return p
		}
		return name
	}
	switch configured {
	case "", "auto":
		if _, err := system.LookPath("firecracker"); err == nil && KVMUsable() == nil {
			return find("firecracker"), "firecracker"
		}
		return find("banger-vmm-qemu"), "qemu"
	case "firecracker", "banger-vmm-qemu":
		kind := "firecracker"
		if configured == "banger-vmm-qemu" {
			kind = "qemu"
		}
		return find(configured), kind
	}
	return configured, kindOf(configured)
}

// kindOf tells a VMM binary's kind from its name.
func kindOf(binary string) string {
	if strings.Contains(filepath.Base(binary), "qemu") {
		return "qemu"
	}
	return "firecracker"
}

// VMMReason says why vmm = "auto" picked QEMU, for the doctor: "" when
// the choice was configured or Firecracker was picked.
func VMMReason(configured, kind string) string {
	if (configured != "auto" && configured != "") || kind != "qemu" {
		return ""
	}
	if _, err := system.LookPath("firecracker"); err != nil {
		return " (Firecracker cannot run here: it is not installed)"
	}
	if err := KVMUsable(); err != nil {
		return " (Firecracker cannot run here: " + err.Error() + ")"
	}
	return ""
}
