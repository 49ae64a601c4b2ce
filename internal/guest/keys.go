package guest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"
)

// UserKey is the key pair banger logs into its guests with.
type UserKey struct {
	// Path is the private key file; the public key sits beside it as Path+".pub".
	Path string
	// Signer authenticates SSH connections.
	Signer ssh.Signer
	// AuthorizedKey is the public key as one authorized_keys line, newline ended.
	AuthorizedKey []byte
}

// EnsureUserKey loads the ed25519 key pair at path, creating it on first use:
// the private key in OpenSSH format with mode 0600 and the public key in
// path+".pub". Missing parent directories are made with mode 0700. A missing or
// stale .pub file is rewritten from the private key.
func EnsureUserKey(path string) (UserKey, error) {
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		data, err = createUserKey(path)
		if err != nil {
			return UserKey{}, err
		}
	case err != nil:
		return UserKey{}, fmt.Errorf("reading ssh key %s: %w", path, err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return UserKey{}, fmt.Errorf("parsing ssh key %s (delete it to let banger make a new one): %w", path, err)
	}
	pub := ssh.MarshalAuthorizedKey(signer.PublicKey())
	if old, err := os.ReadFile(path + ".pub"); err != nil || !samePublicKey(old, signer.PublicKey()) {
		if err := writeFileAtomic(path+".pub", pub, 0o644); err != nil {
			return UserKey{}, fmt.Errorf("writing ssh public key: %w", err)
		}
	}
	return UserKey{Path: path, Signer: signer, AuthorizedKey: pub}, nil
}

func createUserKey(path string) ([]byte, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating ssh key directory: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating ssh key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "banger")
	if err != nil {
		return nil, fmt.Errorf("encoding ssh key: %w", err)
	}
	data := pem.EncodeToMemory(block)
	// Link the finished file into place without replacing anything, so two
	// processes racing on first use agree on one key.
	tmp, err := writeTemp(path, data, 0o600)
	if err != nil {
		return nil, fmt.Errorf("writing ssh key %s: %w", path, err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return os.ReadFile(path)
		}
		return nil, fmt.Errorf("writing ssh key %s: %w", path, err)
	}
	return data, nil
}

func samePublicKey(line []byte, want ssh.PublicKey) bool {
	got, _, _, _, err := ssh.ParseAuthorizedKey(line)
	return err == nil && string(got.Marshal()) == string(want.Marshal())
}

// HostKey is an SSH host key pair generated on the host for one VM.
type HostKey struct {
	// PrivatePEM is the private key in OpenSSH format, for
	// /etc/ssh/ssh_host_ed25519_key in the guest.
	PrivatePEM []byte
	// AuthorizedKey is the public key as one line ("ssh-ed25519 AAAA… comment\n"),
	// for /etc/ssh/ssh_host_ed25519_key.pub.
	AuthorizedKey []byte
	// Public is the parsed public key, for PinHostKey.
	Public ssh.PublicKey
}

// NewHostKey generates an ed25519 host key pair. comment names the key's owner
// in the public line, e.g. "root@dev".
func NewHostKey(comment string) (HostKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return HostKey{}, fmt.Errorf("generating host key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return HostKey{}, fmt.Errorf("encoding host key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return HostKey{}, fmt.Errorf("encoding host public key: %w", err)
	}
	line := ssh.MarshalAuthorizedKey(sshPub)
	if comment != "" {
		line = append(line[:len(line)-1], []byte(" "+comment+"\n")...)
	}
	return HostKey{PrivatePEM: pem.EncodeToMemory(block), AuthorizedKey: line, Public: sshPub}, nil
}

// ParsePublicKey parses one authorized_keys style line, such as a HostKey's
// AuthorizedKey kept in the VM record.
func ParsePublicKey(line []byte) (ssh.PublicKey, error) {
	k, _, _, _, err := ssh.ParseAuthorizedKey(line)
	if err != nil {
		return nil, fmt.Errorf("parsing ssh public key: %w", err)
	}
	return k, nil
}

// writeTemp writes data to a new temporary file beside path and returns its name.
func writeTemp(path string, data []byte, mode os.FileMode) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", err
	}
	name := f.Name()
	_, werr := f.Write(data)
	cerr := f.Chmod(mode)
	serr := f.Sync()
	if err := errors.Join(werr, cerr, serr, f.Close()); err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// writeFileAtomic replaces path with data, so readers see the old or the new
// contents, never a mix.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := writeTemp(path, data, mode)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
