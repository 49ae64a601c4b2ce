package firecracker

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkConfigure measures the API conversation of a boot (logger,
// machine config, boot source, two drives, network interface,
// InstanceStart) against an in-process fake VMM.
func BenchmarkConfigure(b *testing.B) {
	dir, err := os.MkdirTemp("", "fcb")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s := testSpec(dir)
	if err := os.MkdirAll(s.StateDir, 0o700); err != nil {
		b.Fatal(err)
	}
	cfg, err := BuildConfig(s)
	if err != nil {
		b.Fatal(err)
	}
	d := New(Deps{})
	for i := 0; b.Loop(); i++ {
		sock := filepath.Join(dir, "api.sock")
		api := &fakeAPI{}
		stop, err := api.serve(sock)
		if err != nil {
			b.Fatal(err)
		}
		if err := d.configure(context.Background(), cfg); err != nil {
			b.Fatal(err)
		}
		stop()
		os.Remove(sock)
	}
}

// BenchmarkStartShutdown measures the driver's whole overhead for one VM
// with a VMM that answers at once: launch in a new session, socket wait,
// configuration, boot, then ctrl-alt-del and exit.
func BenchmarkStartShutdown(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "fcb")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	b.Setenv(envFakeVMM, modeOK)
	s := testSpec(dir)
	s.Binary = exe
	d := New(Deps{})
	for b.Loop() {
		p, err := d.Start(context.Background(), s)
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Shutdown(context.Background(), p, 10*time.Second); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStart measures Start alone (launch, socket wait, configuration,
// boot) with a VMM that answers at once; the stop is not timed.
func BenchmarkStart(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "fcb")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	b.Setenv(envFakeVMM, modeOK)
	s := testSpec(dir)
	s.Binary = exe
	d := New(Deps{})
	for b.Loop() {
		p, err := d.Start(context.Background(), s)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := d.Kill(context.Background(), p); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
