package disk

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Identity is what makes a VM's root disk its own: written into the image
// before the first boot.
type Identity struct {
	// Hostname is the VM name, a DNS label.
	Hostname string
	// Domain is the DNS domain banger serves ("vm"); empty leaves the FQDN
	// and the resolver search list out.
	Domain string
	// Address is the guest's IPv4 address, listed in /etc/hosts.
	Address netip.Addr
	// Gateway is the bridge address; it is the nameserver unless Nameservers says otherwise.
	Gateway netip.Addr
	// Nameservers for /etc/resolv.conf; [Gateway] when empty.
	Nameservers []netip.Addr
	// AuthorizedKeys is root's authorized_keys: one or more public key lines.
	AuthorizedKeys []byte
	// HostKeyPrivate and HostKeyPublic are this VM's ed25519 SSH host key
	// pair (OpenSSH private key format, and one public key line).
	HostKeyPrivate, HostKeyPublic []byte
	// MachineID is /etc/machine-id, 32 lowercase hex digits; a random one
	// when empty.
	MachineID string
}

// identityDirs are made when missing and always set to root ownership and
// these modes (sshd refuses keys in group- or world-writable directories).
func identityDirs() []guestDir {
	return []guestDir{{Path: "/etc", Perm: 0o755}, {Path: "/etc/ssh", Perm: 0o755}, {Path: "/root", Perm: 0o700}, {Path: "/root/.ssh", Perm: 0o700}}
}

// staleHostKeys are the image's own host keys of other types: every VM
// cloned from the image would share them, so they are removed and sshd
// serves only the VM's own ed25519 key, the one banger pins.
func staleHostKeys() []string {
	return []string{
		"/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_rsa_key.pub",
		"/etc/ssh/ssh_host_ecdsa_key", "/etc/ssh/ssh_host_ecdsa_key.pub",
		"/etc/ssh/ssh_host_dsa_key", "/etc/ssh/ssh_host_dsa_key.pub",
	}
}

// isLabel reports whether s is a lowercase DNS label.
func isLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == ""
}

func isHex32(s string) bool {
	return len(s) == 32 && strings.Trim(s, "0123456789abcdef") == ""
}

// NewMachineID returns a random machine id in /etc/machine-id form.
func NewMachineID() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b)
}

// files validates id and renders the files it stands for.
func (id Identity) files() ([]guestFile, error) {
	if !isLabel(id.Hostname) {
		return nil, fmt.Errorf("hostname %q is not a lowercase DNS label", id.Hostname)
	}
	if id.Domain != "" && !allLabels(id.Domain) {
		return nil, fmt.Errorf("domain %q is not a DNS name", id.Domain)
	}
	ns := id.Nameservers
	if len(ns) == 0 {
		if !id.Gateway.IsValid() {
			return nil, errors.New("no gateway or nameserver for /etc/resolv.conf")
		}
		ns = []netip.Addr{id.Gateway}
	}
	mid := id.MachineID
	if mid == "" {
		mid = NewMachineID()
	}
	if !isHex32(mid) {
		return nil, fmt.Errorf("machine id %q is not 32 lowercase hex digits", mid)
	}
	if err := checkAuthorizedKeys(id.AuthorizedKeys); err != nil {
		return nil, err
	}
	if err := checkHostKey(id.HostKeyPrivate, id.HostKeyPublic); err != nil {
		return nil, err
	}

	names := id.Hostname
	if id.Domain != "" {
		names = id.Hostname + "." + id.Domain + " " + id.Hostname
	}
	self := "127.0.1.1"
	if id.Address.IsValid() {
		self = id.Address.String()
	}
	var hosts strings.Builder
	fmt.Fprintf(&hosts, "127.0.0.1\tlocalhost\n%s\t%s\n", self, names)
	hosts.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")

	var resolv strings.Builder
	resolv.WriteString("# Written by banger.\n")
	for _, a := range ns {
		fmt.Fprintf(&resolv, "nameserver %s\n", a)
	}
	if id.Domain != "" {
		fmt.Fprintf(&resolv, "search %s\n", id.Domain)
	}

	return []guestFile{
		{Path: "/etc/hostname", Data: []byte(id.Hostname + "\n"), Perm: 0o644},
		{Path: "/etc/hosts", Data: []byte(hosts.String()), Perm: 0o644},
		{Path: "/etc/resolv.conf", Data: []byte(resolv.String()), Perm: 0o644},
		{Path: "/etc/machine-id", Data: []byte(mid + "\n"), Perm: 0o444},
		{Path: "/root/.ssh/authorized_keys", Data: withNewline(id.AuthorizedKeys), Perm: 0o600},
		{Path: "/etc/ssh/ssh_host_ed25519_key", Data: withNewline(id.HostKeyPrivate), Perm: 0o600},
		{Path: "/etc/ssh/ssh_host_ed25519_key.pub", Data: withNewline(id.HostKeyPublic), Perm: 0o644},
	}, nil
}

func allLabels(domain string) bool {
	for _, l := range strings.Split(domain, ".") {
		if !isLabel(l) {
			return false
		}
	}
	return true
}

func withNewline(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return append(append([]byte(nil), b...), '\n')
	}
	return b
}

func checkAuthorizedKeys(data []byte) error {
	n := 0
	for _, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if _, _, _, _, err := ssh.ParseAuthorizedKey(line); err != nil {
			return fmt.Errorf("authorized key %.40q: %w", line, err)
		}
		n++
	}
	if n == 0 {
		return errors.New("no authorized key for root")
	}
	return nil
}

func checkHostKey(priv, pub []byte) error {
	signer, err := ssh.ParsePrivateKey(priv)
	if err != nil {
		return fmt.Errorf("host private key: %w", err)
	}
	if signer.PublicKey().Type() != ssh.KeyAlgoED25519 {
		return fmt.Errorf("host key is %s, want ed25519", signer.PublicKey().Type())
	}
	pk, _, _, _, err := ssh.ParseAuthorizedKey(pub)
	if err != nil {
		return fmt.Errorf("host public key: %w", err)
	}
	if !bytes.Equal(pk.Marshal(), signer.PublicKey().Marshal()) {
		return errors.New("host public key does not belong to the private key")
	}
	return nil
}

// WriteIdentity writes id into the ext4 root disk image at rootfs without
// mounting it: /etc/hostname, /etc/hosts, /etc/resolv.conf, /etc/machine-id,
// /root/.ssh/authorized_keys and the ed25519 host key pair in /etc/ssh, all
// owned by root, private files 0600, /root/.ssh 0700. Files already there are
// replaced; the image's other SSH host keys are removed. It reads everything
// back afterwards and fails unless each file has the intended content, mode
// and owner. The VM must not be running.
func (m *Manager) WriteIdentity(ctx context.Context, rootfs string, id Identity) error {
	files, err := id.files()
	if err != nil {
		return fmt.Errorf("writing guest identity into %s: %w", rootfs, err)
	}
	e := edit{Dirs: identityDirs(), Files: files, Remove: staleHostKeys()}
	if err := m.writeFiles(ctx, rootfs, e); err != nil {
		return fmt.Errorf("writing guest identity into %s: %w", rootfs, err)
	}
	m.log.Debug("wrote guest identity", "path", rootfs, "hostname", id.Hostname)
	return nil
}
