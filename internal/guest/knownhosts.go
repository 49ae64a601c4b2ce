package guest

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	"golang.org/x/sys/unix"
)

// KnownHosts manages banger's own known_hosts file, which pins each VM's host
// key under the names a user reaches it by. The OpenSSH client reads the same
// file (UserKnownHostsFile), so `banger vm ssh` verifies the guest instead of
// trusting on first use. Writers take an flock on the file's directory, so the
// daemon and a CLI process never interleave updates.
type KnownHosts struct {
	path string
	mu   sync.Mutex
}

// NewKnownHosts returns a manager for the known_hosts file at path. The file
// and its directory are created on first write.
func NewKnownHosts(path string) *KnownHosts { return &KnownHosts{path: path} }

// Path is the file's location, for OpenSSH's UserKnownHostsFile option.
func (k *KnownHosts) Path() string { return k.path }

// HostNames lists the names banger pins a VM's host key under: "NAME.DOMAIN"
// (the DNS name, also what `banger vm ssh` passes as HostKeyAlias) and the
// address. An invalid addr is left out.
func HostNames(name, domain string, addr netip.Addr) []string {
	names := []string{name + "." + strings.TrimPrefix(domain, ".")}
	if addr.IsValid() {
		names = append(names, addr.String())
	}
	return names
}

// Pin makes key the only host key known for names: every earlier line that
// mentions any of the names is dropped (so a re-created VM with the same name
// or a reused address never triggers a host key warning), then one line for
// all names is appended. Other lines are kept as they are.
func (k *KnownHosts) Pin(names []string, key ssh.PublicKey) error {
	if len(names) == 0 {
		return errors.New("pinning host key: no host names")
	}
	return k.update(func(data []byte) []byte {
		out := dropNames(data, names)
		return append(out, knownhosts.Line(names, key)+"\n"...)
	}, fmt.Sprintf("pinning host key for %s", strings.Join(names, ",")))
}

// Unpin drops every line that mentions any of names. Unpinning names that are
// not there is not an error.
func (k *KnownHosts) Unpin(names []string) error {
	return k.update(func(data []byte) []byte { return dropNames(data, names) },
		fmt.Sprintf("unpinning host key for %s", strings.Join(names, ",")))
}

// Callback returns a HostKeyCallback that accepts only keys pinned in the
// file, read now. A host that is not pinned, or presents another key, is
// refused with a *knownhosts.KeyError.
func (k *KnownHosts) Callback() (ssh.HostKeyCallback, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, err := os.Stat(k.path); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(k.path), 0o700); err != nil {
			return nil, fmt.Errorf("creating known_hosts directory: %w", err)
		}
		f, err := os.OpenFile(k.path, os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("creating %s: %w", k.path, err)
		}
		f.Close()
	}
	cb, err := knownhosts.New(k.path)
	if err != nil {
		return nil, fmt.Errorf("reading known hosts: %w", err)
	}
	return cb, nil
}

func (k *KnownHosts) update(edit func([]byte) []byte, what string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	dir := filepath.Dir(k.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%s: creating %s: %w", what, dir, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer d.Close()
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("%s: locking %s: %w", what, dir, err)
	}
	defer unix.Flock(int(d.Fd()), unix.LOCK_UN)
	data, err := os.ReadFile(k.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := writeFileAtomic(k.path, edit(data), 0o600); err != nil {
		return fmt.Errorf("%s: writing %s: %w", what, k.path, err)
	}
	return nil
}

// dropNames returns data without the lines whose host patterns include any
// of names (compared in known_hosts form, so "host:22" equals "host").
func dropNames(data []byte, names []string) []byte {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[knownhosts.Normalize(n)] = true
	}
	var out []byte
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if lineMentions(line, want) {
			continue
		}
		out = append(out, line...)
		if !bytes.HasSuffix(line, []byte("\n")) {
			out = append(out, '\n')
		}
	}
	return out
}

func lineMentions(line []byte, names map[string]bool) bool {
	fields := strings.Fields(string(line))
	if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
		return false
	}
	hosts := fields[0]
	if strings.HasPrefix(hosts, "@") {
		if len(fields) < 2 {
			return false
		}
		hosts = fields[1]
	}
	for _, h := range strings.Split(hosts, ",") {
		if names[h] {
			return true
		}
	}
	return false
}
