package guest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestEnsureUserKeyCreatesOnceAndReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "id_ed25519")
	k1, err := EnsureUserKey(path)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, path + ".pub": 0o644, filepath.Dir(path): 0o700 | os.ModeDir} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s mode = %v, want %v", p, fi.Mode(), want)
		}
	}
	if k1.Signer.PublicKey().Type() != ssh.KeyAlgoED25519 {
		t.Errorf("key type = %s", k1.Signer.PublicKey().Type())
	}
	pub, _ := os.ReadFile(path + ".pub")
	if !bytes.Equal(pub, k1.AuthorizedKey) {
		t.Errorf(".pub = %q, want %q", pub, k1.AuthorizedKey)
	}
	// A lost .pub is rewritten; the key itself stays.
	os.Remove(path + ".pub")
	k2, err := EnsureUserKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k1.AuthorizedKey, k2.AuthorizedKey) {
		t.Error("second EnsureUserKey made a new key")
	}
	if _, err := os.Stat(path + ".pub"); err != nil {
		t.Errorf(".pub not restored: %v", err)
	}
	// The private key is in OpenSSH format, as the ssh client expects.
	priv, _ := os.ReadFile(path)
	if !bytes.HasPrefix(priv, []byte("-----BEGIN OPENSSH PRIVATE KEY-----")) {
		t.Errorf("private key not in OpenSSH format: %.40q", priv)
	}
}

func TestEnsureUserKeyRejectsGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "id_ed25519")
	os.WriteFile(path, []byte("not a key"), 0o600)
	if _, err := EnsureUserKey(path); err == nil {
		t.Error("garbage key accepted")
	}
}

func TestNewHostKeyPairMatches(t *testing.T) {
	hk, err := NewHostKey("root@dev")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(hk.PrivatePEM)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(hk.AuthorizedKey)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(signer.PublicKey().Marshal(), pub.Marshal()) || !bytes.Equal(pub.Marshal(), hk.Public.Marshal()) {
		t.Error("private and public halves differ")
	}
	if !bytes.HasSuffix(hk.AuthorizedKey, []byte(" root@dev\n")) {
		t.Errorf("public line = %q, want comment root@dev", hk.AuthorizedKey)
	}
	other, _ := NewHostKey("")
	if bytes.Equal(other.Public.Marshal(), hk.Public.Marshal()) {
		t.Error("two host keys are equal")
	}
}
