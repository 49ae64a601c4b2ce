package guest

import (
	"bytes"
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// SSHHost is one VM as OpenSSH's client config names it.
type SSHHost struct {
	// Name is the VM's name, "dev".
	Name string
	// DNSName is its name under banger's domain, "dev.vm": the Host
	// pattern (a bare name could take over `ssh github` from a VM called
	// github) and the name its host key is pinned under (see HostNames).
	DNSName string
	// Addr is its address on the bridge; a VM without one is left out.
	Addr netip.Addr
}

// SSHConfigHeader opens the file RenderSSHConfig writes.
const SSHConfigHeader = "# OpenSSH client configuration for banger's VMs, written by `banger ssh-config`.\n# It is rewritten as VMs come and go: edit ~/.ssh/config instead.\n"

// RenderSSHConfig renders one OpenSSH client config block per VM, sorted by
// name, so that `ssh NAME.vm`, scp, rsync and VS Code Remote
// reach it as root with banger's key and verify it against the host key
// banger pinned for it (HostKeyAlias is the DNS name, as `banger vm ssh`
// uses), with no prompt. identityFile and knownHostsFile must be absolute;
// '%' in them is escaped for OpenSSH's token expansion.
func RenderSSHConfig(hosts []SSHHost, identityFile, knownHostsFile string) ([]byte, error) {
	id, err := sshConfigPath("identity file", identityFile)
	if err != nil {
		return nil, err
	}
	kh, err := sshConfigPath("known_hosts file", knownHostsFile)
	if err != nil {
		return nil, err
	}
	sorted := slices.Clone(hosts)
	slices.SortFunc(sorted, func(a, b SSHHost) int { return cmp.Compare(a.Name, b.Name) })
	var b bytes.Buffer
	b.WriteString(SSHConfigHeader)
	for _, h := range sorted {
		if !validHostPattern(h.Name) || !validHostPattern(h.DNSName) {
			return nil, fmt.Errorf("rendering ssh config: VM name %q or DNS name %q cannot be an ssh Host pattern", h.Name, h.DNSName)
		}
		if !h.Addr.IsValid() {
			fmt.Fprintf(&b, "\n# %s: no address yet\n", h.Name)
			continue
		}
		fmt.Fprintf(&b, "\nHost %s\n", h.DNSName)
		fmt.Fprintf(&b, "\tHostName %s\n", h.Addr.Unmap())
		b.WriteString("\tUser root\n")
		fmt.Fprintf(&b, "\tIdentityFile %s\n", id)
		b.WriteString("\tIdentitiesOnly yes\n")
		fmt.Fprintf(&b, "\tUserKnownHostsFile %s\n", kh)
		b.WriteString("\tGlobalKnownHostsFile /dev/null\n")
		b.WriteString("\tStrictHostKeyChecking yes\n")
		fmt.Fprintf(&b, "\tHostKeyAlias %s\n", h.DNSName)
		b.WriteString("\tCheckHostIP no\n")
	}
	return b.Bytes(), nil
}

// sshConfigPath renders an absolute path as an ssh_config argument:
// quoted when it holds spaces, '%' doubled (IdentityFile and
// UserKnownHostsFile expand %-tokens).
func sshConfigPath(what, p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("rendering ssh config: the %s %q is not an absolute path", what, p)
	}
	if strings.ContainsAny(p, "\"\n\r") {
		return "", fmt.Errorf("rendering ssh config: the %s %q holds a quote or a line break, which ssh_config cannot express", what, p)
	}
	p = strings.ReplaceAll(p, "%", "%%")
	if strings.ContainsAny(p, " \t") {
		p = `"` + p + `"`
	}
	return p, nil
}

// validHostPattern reports whether s matches only itself as an ssh Host
// pattern.
func validHostPattern(s string) bool {
	return s != "" && !strings.ContainsAny(s, " \t\n\r*?!,\"'#%") && !strings.HasPrefix(s, "-")
}

// AddInclude returns an ~/.ssh/config with an `Include PATH` line for path
// at its top (where it applies to every host, before any Host or Match
// block), and true; or the config unchanged and false when such a line is
// already there.
func AddInclude(config []byte, path string) ([]byte, bool, error) {
	if strings.ContainsAny(path, "%*?[") {
		return nil, false, fmt.Errorf("adding an Include for %q: ssh would expand the %%, *, ? or [ in it; move the file to a plainer path", path)
	}
	arg, err := sshConfigPath("included file", path)
	if err != nil {
		return nil, false, err
	}
	for _, line := range strings.Split(string(config), "\n") {
		line = strings.TrimSpace(line)
		i := strings.IndexAny(line, " \t=")
		if i < 0 || !strings.EqualFold(line[:i], "Include") {
			continue
		}
		rest := strings.TrimLeft(line[i:], " \t=")
		if rest == arg || rest == path || slices.Contains(strings.Fields(rest), path) {
			return config, false, nil
		}
	}
	head := "# Added by `banger ssh-config --install`: banger's VMs by name.\nInclude " + arg + "\n"
	if len(config) > 0 {
		head += "\n"
	}
	return append([]byte(head), config...), true, nil
}
