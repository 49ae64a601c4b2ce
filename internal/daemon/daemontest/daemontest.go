package daemontest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"banger/internal/api"
	"banger/internal/config"
	"banger/internal/daemon"
	"banger/internal/image"
)

// Instance is a real daemon, with fake layers, serving on a temporary socket.
type Instance struct {
	Daemon *daemon.Daemon
	Host   *Host
	Paths  config.Paths
	Client *api.Client
	cancel context.CancelFunc
	unlock func()
	done   chan error
}

// Isolate points every XDG variable at a fresh directory under dir, so the
// test has its own banger instance. The runtime dir is kept short because
// unix socket paths are limited to 108 bytes.
func Isolate(t testing.TB) config.Paths {
	t.Helper()
	dir := t.TempDir()
	for env, sub := range map[string]string{"XDG_CONFIG_HOME": "config", "XDG_STATE_HOME": "state", "XDG_DATA_HOME": "data", "XDG_CACHE_HOME": "cache"} {
		t.Setenv(env, filepath.Join(dir, sub))
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	run := filepath.Join(os.TempDir(), "bgt-"+hex.EncodeToString(b[:]))
	if err := os.MkdirAll(run, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	t.Setenv("XDG_RUNTIME_DIR", run)
	for _, k := range config.Keys() {
		os.Unsetenv(config.EnvName(k))
	}
	return config.DefaultPaths()
}

// Start runs a daemon with fake layers in this process until the test ends.
// Optional edits adjust the configuration or the dependencies first.
func Start(t testing.TB, edit func(*daemon.Config, *daemon.Deps)) *Instance {
	t.Helper()
	paths := Isolate(t)
	loaded, err := config.Load(paths)
	if err != nil {
		t.Fatal(err)
	}
	loaded.ReconcileInterval = "50ms"
	loaded.StopTimeout = "1s"
	host := NewHost()
	deps := host.Layers()
	cfg := daemon.Config{Loaded: loaded, Version: "test", BuildID: "test"}
	if edit != nil {
		edit(&cfg, &deps)
	}
	return Serve(t, cfg, deps, host)
}

// Serve runs a daemon built from cfg and deps on cfg's socket until the
// test ends.
func Serve(t testing.TB, cfg daemon.Config, deps daemon.Deps, host *Host) *Instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := daemon.New(ctx, cfg, deps)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	unlock, err := daemon.Lock(cfg.Paths)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	l, err := daemon.Listen(cfg.Paths.Socket())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	inst := &Instance{Daemon: d, Host: host, Paths: cfg.Paths, Client: api.NewClient(cfg.Paths.Socket()), cancel: cancel, unlock: unlock, done: make(chan error, 1)}
	go func() { inst.done <- d.Serve(ctx, l) }()
	t.Cleanup(func() {
		inst.Stop()
		d.Close()
	})
	return inst
}

// Stop ends the daemon, as a daemon restart would; VMs are not touched.
func (i *Instance) Stop() {
	if i.cancel == nil {
		return
	}
	i.cancel()
	select {
	case <-i.done:
	case <-time.After(10 * time.Second):
	}
	i.unlock()
	i.cancel = nil
}

// AddImage registers a fake image named name.
func (i *Instance) AddImage(t testing.TB, name string) image.Image {
	t.Helper()
	dir := filepath.Join(i.Paths.ImagesDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	img := image.Image{ID: "img-" + name, Name: name, Source: image.FromBootstrap, Dir: dir,
		Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.img"), Rootfs: filepath.Join(dir, "rootfs.ext4"),
		SizeBytes: 2 << 30, KernelVersion: "6.1.0-test", CreatedAt: time.Now().UTC()}
	for _, f := range []string{img.Kernel, img.Initrd, img.Rootfs} {
		if err := os.WriteFile(f, []byte("fake"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := i.Daemon.Store().CreateImage(context.Background(), &img); err != nil {
		t.Fatal(err)
	}
	return img
}
