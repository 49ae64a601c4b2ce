package guest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh/knownhosts"
)

type testEnv struct {
	guest *fakeGuest
	cfg   Config
	host  HostKey
}

// newTestEnv starts a fake guest and a client config that trusts it only
// through a pinned known_hosts entry, as banger does.
func newTestEnv(t testing.TB) testEnv {
	t.Helper()
	dir := t.TempDir()
	user, err := EnsureUserKey(filepath.Join(dir, "id_ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	host, err := NewHostKey("root@test")
	if err != nil {
		t.Fatal(err)
	}
	g := newFakeGuest(t, host, user.Signer.PublicKey())
	kh := NewKnownHosts(filepath.Join(dir, "known_hosts"))
	if err := kh.Pin([]string{g.addr()}, host.Public); err != nil {
		t.Fatal(err)
	}
	cb, err := kh.Callback()
	if err != nil {
		t.Fatal(err)
	}
	return testEnv{guest: g, host: host, cfg: Config{Signer: user.Signer, HostKeyCallback: cb, PollInterval: 10 * time.Millisecond}}
}

func dial(t *testing.T, e testEnv) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, e.guest.addr(), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRunStreamsOutputAndExitCode(t *testing.T) {
	e := newTestEnv(t)
	c := dial(t, e)
	ctx := context.Background()
	var out bytes.Buffer
	if err := c.Run(ctx, Command{Line: "echo hello", Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	if out.String() != "hello\n" {
		t.Errorf("stdout = %q", out.String())
	}
	out.Reset()
	if err := c.Run(ctx, Command{Line: "cat", Stdin: strings.NewReader("piped"), Stdout: &out}); err != nil || out.String() != "piped" {
		t.Errorf("cat = %q, %v", out.String(), err)
	}
	_, err := c.Output(ctx, "exit 3")
	var ee *ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("err = %v, want *ExitError", err)
	}
	if ee.Code != 3 || !strings.Contains(ee.Stderr, "something went wrong") {
		t.Errorf("ExitError = %+v", ee)
	}
}

func TestManySessionsOneConnection(t *testing.T) {
	e := newTestEnv(t)
	c := dial(t, e)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := c.Output(context.Background(), "echo "+strings.Repeat("x", i))
			if err == nil && string(out) != strings.Repeat("x", i)+"\n" {
				err = errors.New("wrong output " + string(out))
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := e.guest.conns.Load(); n != 1 {
		t.Errorf("server saw %d connections, want 1", n)
	}
}

func TestRunCancelKillsCommand(t *testing.T) {
	e := newTestEnv(t)
	c := dial(t, e)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	err := c.Run(ctx, Command{Line: "sleep"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	// The connection stays usable for the next session.
	if out, err := c.Output(context.Background(), "echo still here"); err != nil || string(out) != "still here\n" {
		t.Errorf("after cancel: %q, %v", out, err)
	}
}

func TestWaitReadyRetriesUntilBanner(t *testing.T) {
	e := newTestEnv(t)
	e.guest.dropFirst.Store(3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := WaitReady(ctx, e.guest.addr(), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n := e.guest.conns.Load(); n != 4 {
		t.Errorf("connections = %d, want 3 dropped + 1 served", n)
	}
}

func TestWaitReadyTimesOutWithLastError(t *testing.T) {
	e := newTestEnv(t)
	// A port that was free a moment ago: connections are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = WaitReady(ctx, addr, e.cfg)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "refused") {
		t.Errorf("err = %v, want deadline exceeded naming the refused connection", err)
	}
}

func TestWaitReadyStopsOnWrongHostKey(t *testing.T) {
	e := newTestEnv(t)
	other, err := NewHostKey("")
	if err != nil {
		t.Fatal(err)
	}
	kh := NewKnownHosts(filepath.Join(t.TempDir(), "known_hosts"))
	if err := kh.Pin([]string{e.guest.addr()}, other.Public); err != nil {
		t.Fatal(err)
	}
	if e.cfg.HostKeyCallback, err = kh.Callback(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = WaitReady(ctx, e.guest.addr(), e.cfg)
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) || ctx.Err() != nil {
		t.Fatalf("err = %v, want an immediate *knownhosts.KeyError", err)
	}
	if e.guest.conns.Load() != 1 {
		t.Errorf("retried %d times after a host key mismatch", e.guest.conns.Load())
	}
}

func TestDialRefusesUnpinnedHost(t *testing.T) {
	e := newTestEnv(t)
	kh := NewKnownHosts(filepath.Join(t.TempDir(), "known_hosts"))
	cb, err := kh.Callback()
	if err != nil {
		t.Fatal(err)
	}
	e.cfg.HostKeyCallback = cb
	if _, err := Dial(context.Background(), e.guest.addr(), e.cfg); !isHostKeyError(err) {
		t.Errorf("err = %v, want host key error", err)
	}
}

// makeTree builds a directory with the kinds of entries Upload must carry.
func makeTree(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "bin"), 0o750))
	must(os.WriteFile(filepath.Join(src, "bin", "tool"), []byte("#!/bin/sh\necho hi\n"), 0o755))
	must(os.WriteFile(filepath.Join(src, "secret"), []byte("s3cret"), 0o600))
	must(os.WriteFile(filepath.Join(src, "setuid"), []byte("x"), 0o4755))
	must(os.WriteFile(filepath.Join(src, "empty"), nil, 0o644))
	must(os.Chmod(filepath.Join(src, "setuid"), 0o4755|fs.ModeSetuid))
	must(os.Symlink("bin/tool", filepath.Join(src, "link")))
	must(os.Symlink("/nonexistent/target", filepath.Join(src, "dangling")))
	must(os.Mkdir(filepath.Join(src, "emptydir"), 0o700))
	// A large, mostly sparse file with data at both ends and in the middle.
	f, err := os.Create(filepath.Join(src, "big.img"))
	must(err)
	must(f.Truncate(48 << 20))
	for _, off := range []int64{0, 17<<20 + 3, 48<<20 - 5} {
		_, err := f.WriteAt([]byte("data!"), off)
		must(err)
	}
	must(f.Close())
	return src
}

// treeState renders a tree as path → mode, link target or content hash.
func treeState(t *testing.T, root string) map[string]string {
	t.Helper()
	st := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		v := fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			v += " -> " + target
		case fi.Mode().IsRegular():
			data, _ := os.ReadFile(p)
			sum := sha256.Sum256(data)
			v += fmt.Sprintf(" %d %x", len(data), sum[:8])
		}
		st[rel] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestUploadDirectoryKeepsModesAndLinks(t *testing.T) {
	e := newTestEnv(t)
	c := dial(t, e)
	src := makeTree(t)
	if err := c.Upload(context.Background(), src, "/opt/app"); err != nil {
		t.Fatal(err)
	}
	want := treeState(t, src)
	got := treeState(t, filepath.Join(e.guest.root, "opt", "app"))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("uploaded tree differs (-want +got):\n%s", diff)
	}
	if len(want) != 9 {
		t.Errorf("source tree has %d entries, want 9: %v", len(want), want)
	}
}

func TestUploadFileAndDownload(t *testing.T) {
	e := newTestEnv(t)
	c := dial(t, e)
	src := filepath.Join(t.TempDir(), "local-name")
	if err := os.WriteFile(src, []byte("payload\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := c.Upload(context.Background(), src, "/etc/app/it's.conf"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(e.guest.root, "etc", "app", "it's.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o640 {
		t.Errorf("mode = %v, want 0640", fi.Mode())
	}
	var got bytes.Buffer
	if err := c.Download(context.Background(), "/etc/app/it's.conf", &got); err != nil {
		t.Fatal(err)
	}
	if got.String() != "payload\n" {
		t.Errorf("downloaded %q", got.String())
	}
	if err := c.Download(context.Background(), "/nope", &got); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestUploadMissingSource(t *testing.T) {
	e := newTestEnv(t)
	c := dial(t, e)
	err := c.Upload(context.Background(), filepath.Join(t.TempDir(), "absent"), "/x")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("err = %v, want not-exist", err)
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/local":   "/usr/local",
		"":             "''",
		"a b":          "'a b'",
		"it's":         `'it'\''s'`,
		"$(rm -rf /)":  "'$(rm -rf /)'",
		"x;y":          "'x;y'",
		"name=v,a@b:c": "name=v,a@b:c",
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
}
