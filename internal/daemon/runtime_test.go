package daemon_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"banger/internal/api"
	"banger/internal/daemon"
	"banger/internal/daemon/daemontest"
	"banger/internal/runtimebundle"
)

// TestRuntimeBundleIsAnImage: with a runtime bundle and no image, vm create
// boots the bundle's kernel and root file system.
func TestRuntimeBundleIsAnImage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, f := range []string{"vmlinuz", "initrd.img", "rootfs.ext4"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("bundle "+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := runtimebundle.LoadOrInfer(dir)
	if err != nil {
		t.Fatal(err)
	}
	inst := daemontest.Start(t, func(_ *daemon.Config, deps *daemon.Deps) {
		deps.Runtime = &daemon.Runtime{Dir: dir, Source: runtimebundle.FromConfig, Bundle: b}
	})
	img, err := inst.Client.Image(ctx, daemon.BundleImage)
	if err != nil || img.Rootfs != filepath.Join(dir, "rootfs.ext4") || img.Source != "bundle" {
		t.Fatalf("bundle image = %+v, %v", img, err)
	}
	v, _, err := inst.Client.CreateVM(ctx, api.CreateVMRequest{Name: "dev"}, nil)
	if err != nil || v.Image != daemon.BundleImage {
		t.Errorf("create without an image on a host with a bundle = %+v, %v", v, err)
	}
	st, err := inst.Client.Status(ctx)
	if err != nil || st.Runtime == "" {
		t.Errorf("status does not name the runtime: %+v, %v", st.Runtime, err)
	}
	// Removing the image never touches the bundle's files.
	if err := inst.Client.RemoveVM(ctx, "dev", api.RemoveVMRequest{Force: true}); err != nil {
		t.Fatal(err)
	}
	if err := inst.Client.RemoveImage(ctx, daemon.BundleImage); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "rootfs.ext4")); err != nil {
		t.Errorf("removing the bundle image removed the bundle's root file system: %v", err)
	}
}

func TestBootstrapKeepsItsLogWithTheImage(t *testing.T) {
	ctx := context.Background()
	inst := daemontest.Start(t, nil)
	img, err := inst.Client.BootstrapImage(ctx, api.BootstrapImageRequest{Name: "base"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(img.BuildLog)
	if err != nil || !strings.Contains(string(data), "fake bootstrap of base") || !strings.Contains(string(data), "== log: bootstrap log:") {
		t.Errorf("bootstrap log %s = %q, %v", img.BuildLog, data, err)
	}
	inst.Host.FailNext("bootstrap", errors.New("mirror unreachable"))
	_, err = inst.Client.BootstrapImage(ctx, api.BootstrapImageRequest{Name: "broken"}, nil)
	var ae *api.Error
	if !errors.As(err, &ae) || len(ae.Logs) == 0 || !strings.HasSuffix(ae.Logs[0], ".log") {
		t.Fatalf("failed bootstrap: %v, want its log named", err)
	}
	if data, _ := os.ReadFile(ae.Logs[0]); !strings.Contains(string(data), "mirror unreachable") {
		t.Errorf("the failed bootstrap's log %s does not say why: %q", ae.Logs[0], data)
	}
}
