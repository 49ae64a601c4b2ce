package guest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// notReadyHandler signals once per "ssh not ready" debug line.
type notReadyHandler struct{ failed chan struct{} }

func (h notReadyHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h notReadyHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h notReadyHandler) WithGroup(string) slog.Handler            { return h }
func (h notReadyHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "ssh not ready" {
		select {
		case h.failed <- struct{}{}:
		default:
		}
	}
	return nil
}

// TestWaitReadySeesThePortOpen: a port that refuses connections and then
// opens (sshd starting) is reported as refused before, so Connected marks
// when it opened.
func TestWaitReadySeesThePortOpen(t *testing.T) {
	e := newTestEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	kh := NewKnownHosts(filepath.Join(t.TempDir(), "known_hosts"))
	if err := kh.Pin([]string{addr}, e.host.Public); err != nil {
		t.Fatal(err)
	}
	if e.cfg.HostKeyCallback, err = kh.Callback(); err != nil {
		t.Fatal(err)
	}
	failed := make(chan struct{}, 1)
	e.cfg.Log = slog.New(notReadyHandler{failed})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type result struct {
		c   *Client
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := WaitReady(ctx, addr, e.cfg)
		done <- result{c, err}
	}()
	select {
	case <-failed:
	case <-ctx.Done():
		t.Fatal("no refused attempt")
	}
	// Open the port: forward it to the fake guest.
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			g, err := net.Dial("tcp", e.guest.addr())
			if err != nil {
				c.Close()
				return
			}
			go func() { io.Copy(g, c); g.Close() }()
			go func() { io.Copy(c, g); c.Close() }()
		}
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.c.Close()
	got := r.c.Readiness()
	if !got.Refused || got.Attempts < 2 {
		t.Errorf("readiness = %+v, want refused with at least 2 attempts", got)
	}
	if got.Connected.IsZero() || got.Answered.Before(got.Connected) {
		t.Errorf("connected %v, answered %v: want a handshake after the connection", got.Connected, got.Answered)
	}
}

// TestWaitReadyFirstAttemptIsNotRefused: a server that answers at once
// gives no sign of when it started.
func TestWaitReadyFirstAttemptIsNotRefused(t *testing.T) {
	e := newTestEnv(t)
	e.guest.dropFirst.Store(2) // reset, not refused
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := WaitReady(ctx, e.guest.addr(), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := c.Readiness()
	if got.Refused || got.Attempts != 3 {
		t.Errorf("readiness = %+v, want 3 attempts, none refused", got)
	}
	// The failed attempts still say when the last one was made.
	if got.LastFailed.IsZero() || !got.LastFailed.Before(got.Connected) {
		t.Errorf("last failed attempt at %v, connected %v: want a failure before the connection", got.LastFailed, got.Connected)
	}
}

// TestConnectTimeoutStaysQuickThroughABoot: unanswered attempts stay
// quick for quickConnectFor, so the connection is made within one attempt
// of the guest listening, then back off to maxConnectTimeout.
func TestConnectTimeoutStaysQuickThroughABoot(t *testing.T) {
	connect := firstConnectTimeout
	for waited := time.Duration(0); waited < quickConnectFor; waited += firstConnectTimeout {
		if connect = nextConnectTimeout(connect, waited); connect != firstConnectTimeout {
			t.Fatalf("after %s of waiting the connect timeout is %s, want %s", waited, connect, firstConnectTimeout)
		}
	}
	var got []time.Duration
	for range 10 {
		connect = nextConnectTimeout(connect, quickConnectFor)
		got = append(got, connect)
	}
	if got[0] != 2*firstConnectTimeout || got[len(got)-1] != maxConnectTimeout {
		t.Errorf("connect timeouts after %s: %v, want doubling from %s up to %s", quickConnectFor, got, 2*firstConnectTimeout, maxConnectTimeout)
	}
}
