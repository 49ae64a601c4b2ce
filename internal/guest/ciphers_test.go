package guest

import (
	"context"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestWaitReadyWithCiphersRetriesAndRuns(t *testing.T) {
	e := newTestEnv(t)
	e.guest.dropFirst.Store(2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := e.cfg
	cfg.Ciphers = []string{ssh.CipherChaCha20Poly1305}
	c, err := WaitReady(ctx, e.guest.addr(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n := e.guest.conns.Load(); n != 3 {
		t.Errorf("connections = %d, want 2 dropped + 1 served", n)
	}
	out, err := c.Output(ctx, "echo hi")
	if err != nil || strings.TrimSpace(string(out)) != "hi" {
		t.Errorf("echo over the connection: %q, %v", out, err)
	}
}

func TestWaitReadyWithCiphersOffersOnlyThoseGiven(t *testing.T) {
	e := newTestEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	// A cipher nobody implements leaves nothing to agree on.
	cfg := e.cfg
	cfg.Ciphers = []string{"rot13@banger.invalid"}
	_, err := WaitReady(ctx, e.guest.addr(), cfg)
	if err == nil || !strings.Contains(err.Error(), "no common algorithm") {
		t.Errorf("err = %v, want no common algorithm", err)
	}
}

func TestBulkCiphersAreSupported(t *testing.T) {
	supported := map[string]bool{}
	for _, c := range ssh.SupportedAlgorithms().Ciphers {
		supported[c] = true
	}
	b := BulkCiphers()
	if b[0] != ssh.CipherChaCha20Poly1305 {
		t.Errorf("first bulk cipher %s, want chacha20-poly1305", b[0])
	}
	for _, c := range b {
		if !supported[c] {
			t.Errorf("%s is not implemented by x/crypto/ssh", c)
		}
	}
}
