package guest

import "golang.org/x/crypto/ssh"

// BulkCiphers is the cipher preference for connections that carry bulk
// data into a guest, such as the image builder's uploads: chacha20-poly1305
// first, as OpenSSH's client offers it. x/crypto's default puts AES-GCM
// first, which a guest under QEMU's software emulation decrypts at about
// half the speed (measured: 100 MiB in 15 s against 8 s).
func BulkCiphers() []string {
	return []string{ssh.CipherChaCha20Poly1305, ssh.CipherAES128GCM, ssh.CipherAES256GCM, ssh.CipherAES128CTR, ssh.CipherAES256CTR}
}
