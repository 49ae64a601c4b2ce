package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"banger/internal/guest"
)

// writeSSHConfig rewrites the OpenSSH client configuration for the VMs
// (paths.SSHConfig, included from ~/.ssh/config by `banger ssh-config
// --install`), so `ssh NAME.vm`, scp and rsync reach every VM. It is
// written whenever a VM appears or goes, atomically.
func (d *Daemon) writeSSHConfig(ctx context.Context) error {
	vms, err := d.store.VMs(ctx)
	if err != nil {
		return err
	}
	var hosts []guest.SSHHost
	for i := range vms {
		if !vms[i].Hidden {
			hosts = append(hosts, guest.SSHHost{Name: vms[i].Name, DNSName: d.dnsName(&vms[i]), Addr: vms[i].IP})
		}
	}
	paths := d.cfg.Paths
	text, err := guest.RenderSSHConfig(hosts, paths.UserKey(), paths.KnownHosts())
	if err != nil {
		return err
	}
	path := paths.SSHConfig()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, text, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// refreshSSHConfig rewrites the ssh configuration, logging a failure: a
// stale file costs an `ssh NAME.vm`, never a VM.
func (d *Daemon) refreshSSHConfig(ctx context.Context) {
	if err := d.writeSSHConfig(context.WithoutCancel(ctx)); err != nil {
		d.log.Warn("writing the ssh configuration for the vms", "err", err)
	}
}
