package disk

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
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

// guestFile is one file to write into an image.
type guestFile struct {
	Path string
	Data []byte
	Perm uint32 // permission bits, e.g. 0o600
}

// guestDir is a directory that must exist with the given mode, owned by root.
type guestDir struct {
	Path string
	Perm uint32
}

// identityDirs are made when missing and always set to root ownership and
// these modes (sshd refuses keys in group- or world-writable directories).
func identityDirs() []guestDir {
	return []guestDir{{"/etc", 0o755}, {"/etc/ssh", 0o755}, {"/root", 0o700}, {"/root/.ssh", 0o700}}
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
		{"/etc/hostname", []byte(id.Hostname + "\n"), 0o644},
		{"/etc/hosts", []byte(hosts.String()), 0o644},
		{"/etc/resolv.conf", []byte(resolv.String()), 0o644},
		{"/etc/machine-id", []byte(mid + "\n"), 0o444},
		{"/root/.ssh/authorized_keys", withNewline(id.AuthorizedKeys), 0o600},
		{"/etc/ssh/ssh_host_ed25519_key", withNewline(id.HostKeyPrivate), 0o600},
		{"/etc/ssh/ssh_host_ed25519_key.pub", withNewline(id.HostKeyPublic), 0o644},
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
	if err := m.writeFiles(ctx, rootfs, identityDirs(), files, staleHostKeys()); err != nil {
		return fmt.Errorf("writing guest identity into %s: %w", rootfs, err)
	}
	m.log.Debug("wrote guest identity", "path", rootfs, "hostname", id.Hostname)
	return nil
}

// writeFiles makes dirs, removes the paths in remove, and writes files in
// the image, then verifies the result. It runs debugfs three times: to see
// what exists (debugfs's mkdir corrupts the filesystem when the directory
// exists, and its write refuses to replace a file), to write, and to read
// everything back.
func (m *Manager) writeFiles(ctx context.Context, image string, dirs []guestDir, files []guestFile, remove []string) error {
	probe := []string{"stat /"}
	for _, d := range dirs {
		probe = append(probe, "stat "+d.Path)
	}
	for _, p := range remove {
		probe = append(probe, "stat "+p)
	}
	for _, f := range files {
		probe = append(probe, "stat "+f.Path)
	}
	out, err := m.debugfs(ctx, image, false, probe)
	if err != nil {
		return fmt.Errorf("inspecting the image: %w", err)
	}
	if _, ok := parseStat(out[0]); !ok {
		return errors.New("inspecting the image: no root directory; is it an ext4 filesystem image?")
	}
	existing := map[string]inode{}
	for i, cmd := range probe[1:] {
		i++
		if ino, ok := parseStat(out[i]); ok {
			existing[strings.TrimPrefix(cmd, "stat ")] = ino
		}
	}

	staging, err := os.MkdirTemp("", "banger-identity-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(staging)
	hostPaths := map[string]string{}
	for i, f := range files {
		p := filepath.Join(staging, fmt.Sprint(i))
		if err := os.WriteFile(p, f.Data, 0o600); err != nil {
			return err
		}
		hostPaths[f.Path] = p
	}
	script, err := writeScript(dirs, files, remove, existing, hostPaths)
	if err != nil {
		return err
	}
	// Read everything back in the same session: debugfs exits 0 even when
	// a command fails, so the read-back is how failures show.
	var verify []string
	for _, f := range files {
		verify = append(verify, "stat "+f.Path, "cat "+f.Path)
	}
	for _, d := range dirs {
		verify = append(verify, "stat "+d.Path)
	}
	out, err = m.debugfs(ctx, image, true, append(script, verify...))
	if err != nil {
		return fmt.Errorf("writing files: %w", err)
	}
	return checkWritten(dirs, files, out[len(script):])
}

// inode is the part of debugfs's stat output banger checks.
type inode struct {
	Type           string // "regular", "directory", "symlink", …
	Perm, UID, GID uint32
	Size           int64
}

// writeScript renders the debugfs commands that make the image match dirs
// and files, given what exists already.
func writeScript(dirs []guestDir, files []guestFile, remove []string, existing map[string]inode, hostPaths map[string]string) ([]string, error) {
	var s []string
	owned := func(path string, typeBits, perm uint32) {
		s = append(s,
			fmt.Sprintf("sif %s mode 0%o", path, typeBits|perm),
			"sif "+path+" uid 0",
			"sif "+path+" gid 0")
	}
	for _, d := range dirs {
		if ino, ok := existing[d.Path]; ok {
			if ino.Type != "directory" {
				return nil, fmt.Errorf("%s in the image is a %s, not a directory", d.Path, ino.Type)
			}
		} else {
			s = append(s, "mkdir "+d.Path)
		}
		owned(d.Path, 0o40000, d.Perm)
	}
	for _, p := range remove {
		if ino, ok := existing[p]; ok && ino.Type != "directory" {
			s = append(s, "rm "+p)
		}
	}
	for _, f := range files {
		if ino, ok := existing[f.Path]; ok {
			if ino.Type == "directory" {
				return nil, fmt.Errorf("%s in the image is a directory", f.Path)
			}
			s = append(s, "rm "+f.Path)
		}
		s = append(s, fmt.Sprintf("write %s %s", debugfsQuote(hostPaths[f.Path]), f.Path))
		owned(f.Path, 0o100000, f.Perm)
	}
	return s, nil
}

// debugfsQuote quotes a host path for debugfs's command parser.
func debugfsQuote(p string) string {
	if strings.ContainsAny(p, " \t\"") {
		return `"` + strings.ReplaceAll(p, `"`, `\"`) + `"`
	}
	return p
}

// checkWritten compares the read-back output (stat and cat of each file,
// then stat of each directory) with what was meant to be written.
func checkWritten(dirs []guestDir, files []guestFile, out []string) error {
	var errs []error
	i := 0
	for _, f := range files {
		ino, ok := parseStat(out[i])
		content := out[i+1]
		i += 2
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s is missing after writing it", f.Path))
		case ino.Type != "regular" || ino.Perm != f.Perm || ino.UID != 0 || ino.GID != 0:
			errs = append(errs, fmt.Errorf("%s is a %s with mode %04o owned by %d:%d, want a regular file with mode %04o owned by root", f.Path, ino.Type, ino.Perm, ino.UID, ino.GID, f.Perm))
		case content != string(f.Data):
			errs = append(errs, fmt.Errorf("%s reads back %d bytes that differ from the %d written", f.Path, len(content), len(f.Data)))
		}
	}
	for _, d := range dirs {
		ino, ok := parseStat(out[i])
		i++
		if !ok || ino.Type != "directory" || ino.Perm != d.Perm || ino.UID != 0 || ino.GID != 0 {
			errs = append(errs, fmt.Errorf("%s is not a root-owned directory with mode %04o after writing (%+v)", d.Path, d.Perm, ino))
		}
	}
	return errors.Join(errs...)
}
