package nat

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"banger/internal/system"
)

// DefaultForwardDir holds the ip_forward records: root-owned, on tmpfs,
// so a record never outlives the boot whose value it kept.
const DefaultForwardDir = "/run/banger"

// ForwardRecordPath names the record of the calling process's network
// namespace in dir: net.ipv4.ip_forward is per namespace, so each has its
// own record ("ip_forward.net-4026531840").
func ForwardRecordPath(dir string) (string, error) {
	st, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		return "", fmt.Errorf("identifying the network namespace for the ip_forward record: %w", err)
	}
	return filepath.Join(dir, fmt.Sprintf("ip_forward.net-%d", st.Sys().(*syscall.Stat_t).Ino)), nil
}

// recordForward writes "0" to path unless a record exists: the first time
// banger turns forwarding on, it was off. A later Up, after something else
// turned it off again, keeps the first record.
func recordForward(path string) error {
	if path == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("recording net.ipv4.ip_forward before changing it: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("recording net.ipv4.ip_forward before changing it: %w", err)
	}
	if _, err := f.WriteString("0\n"); err != nil {
		f.Close()
		return fmt.Errorf("recording net.ipv4.ip_forward in %s: %w", path, err)
	}
	return f.Close()
}

// RestoreForward puts net.ipv4.ip_forward back to the value recorded at
// path before banger first turned it on, and removes the record. It
// reports whether it changed the sysctl; without a record (banger never
// changed it, or it was on already) it does nothing. The caller makes sure
// no banger network in this namespace still needs forwarding.
func RestoreForward(ctx context.Context, deps Deps, path string) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading the ip_forward record: %w", err)
	}
	if strings.TrimSpace(string(data)) != "0" {
		return false, fmt.Errorf("ip_forward record %s holds %q, not 0; remove it once you have checked net.ipv4.ip_forward", path, strings.TrimSpace(string(data)))
	}
	if deps.ReadFile == nil {
		deps.ReadFile = os.ReadFile
	}
	if deps.LookPath == nil {
		deps.LookPath = system.LookPath
	}
	if deps.Runner == nil {
		return false, errors.New("restoring net.ipv4.ip_forward: no command runner")
	}
	cur, err := deps.ReadFile(ipForwardPath)
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", ipForwardPath, err)
	}
	changed := false
	if strings.TrimSpace(string(cur)) == "1" {
		sysctl, err := deps.LookPath("sysctl")
		if err != nil {
			return false, errors.New("restoring net.ipv4.ip_forward=0: sysctl not found; install it with `apt-get install procps`")
		}
		if err := deps.Runner.Run(ctx, sysctl, "-w", "net.ipv4.ip_forward=0"); err != nil {
			return false, fmt.Errorf("restoring net.ipv4.ip_forward=0: %w", err)
		}
		changed = true
	}
	if err := os.Remove(path); err != nil {
		return changed, fmt.Errorf("removing the ip_forward record: %w", err)
	}
	return changed, nil
}
