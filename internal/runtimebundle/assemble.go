package runtimebundle

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"banger/internal/bootstrap"
)

// AssembleInput names host files that make up a bundle, typically the
// artifacts of a bootstrapped image plus the VMM binary.
type AssembleInput struct {
	Name          string
	KernelVersion string
	Kernel        string // bzImage
	Vmlinux       string // optional
	Initrd        string
	Rootfs        string
	Manifest      string // optional package manifest
	VMM           string // optional default VMM binary
	// Helpers maps helper names to host files, copied into bin/.
	Helpers map[string]string
}

// Assemble creates the bundle directory dst (which must not exist) from
// in: files are copied (reflinked or sparse-copied) into a fixed layout,
// and bundle.json is written with the checksums of all of them. The
// directory appears in one rename at the end.
func Assemble(ctx context.Context, dst string, in AssembleInput) (Bundle, error) {
	if _, err := os.Lstat(dst); err == nil {
		return Bundle{}, fmt.Errorf("assembling runtime bundle: %s already exists", dst)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return Bundle{}, fmt.Errorf("assembling runtime bundle: %w", err)
	}
	stage, err := os.MkdirTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".assemble-")
	if err != nil {
		return Bundle{}, fmt.Errorf("assembling runtime bundle: %w", err)
	}
	defer os.RemoveAll(stage)
	b := Bundle{Version: FormatVersion, Name: in.Name, KernelVersion: in.KernelVersion}
	put := func(src, rel string, field *string) error {
		if src == "" {
			return nil
		}
		if err := os.MkdirAll(filepath.Join(stage, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		if err := bootstrap.CopyFile(ctx, src, filepath.Join(stage, rel)); err != nil {
			return fmt.Errorf("assembling runtime bundle: %w", err)
		}
		*field = rel
		return nil
	}
	steps := []struct {
		src, rel string
		field    *string
	}{
		{in.Kernel, "boot/vmlinuz", &b.Kernel},
		{in.Vmlinux, "boot/vmlinux", &b.Vmlinux},
		{in.Initrd, "boot/initrd.img", &b.Initrd},
		{in.Rootfs, "rootfs/rootfs.ext4", &b.Rootfs},
		{in.Manifest, "rootfs/manifest.txt", &b.Manifest},
	}
	if in.VMM != "" {
		steps = append(steps, struct {
			src, rel string
			field    *string
		}{in.VMM, "bin/" + filepath.Base(in.VMM), &b.VMM})
	}
	for _, s := range steps {
		if err := put(s.src, s.rel, s.field); err != nil {
			return Bundle{}, err
		}
	}
	for name, src := range in.Helpers {
		var rel string
		if err := put(src, "bin/"+filepath.Base(src), &rel); err != nil {
			return Bundle{}, err
		}
		if b.Helpers == nil {
			b.Helpers = map[string]string{}
		}
		b.Helpers[name] = rel
	}
	if err := b.Validate(); err != nil {
		return Bundle{}, fmt.Errorf("assembling runtime bundle: %w", err)
	}
	if b.Files, err = Checksums(stage); err != nil {
		return Bundle{}, err
	}
	if err := Write(stage, b); err != nil {
		return Bundle{}, err
	}
	if err := os.Chmod(stage, 0o755); err != nil {
		return Bundle{}, err
	}
	if err := os.Rename(stage, dst); err != nil {
		return Bundle{}, fmt.Errorf("assembling runtime bundle: %w", err)
	}
	return b, nil
}
