package firecracker

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"banger/internal/system"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		name, out string
		want      VersionInfo
		wantErr   error
	}{
		{"firecracker 1.7", "Firecracker v1.7.0\n\n", VersionInfo{KindFirecracker, "1.7.0"}, nil},
		{"firecracker 0.25 with snapshot line",
			"Firecracker v0.25.2\n\nSupported snapshot data format versions: v0.23.0, v0.24.0, v0.25.0\n",
			VersionInfo{KindFirecracker, "0.25.2"}, nil},
		{"firecracker dev build", "Firecracker v1.11.0-dev\n", VersionInfo{KindFirecracker, "1.11.0-dev"}, nil},
		{"banger-vmm-qemu", "banger-vmm-qemu 0.3.1 (Firecracker API 1.0.0)\n", VersionInfo{KindQEMU, "0.3.1"}, nil},
		{"banger-vmm-qemu with v", "banger-vmm-qemu v0.0.0-dev\n", VersionInfo{KindQEMU, "0.0.0-dev"}, nil},
		{"qemu itself", "QEMU emulator version 8.2.2 (Debian 1:8.2.2+ds-0ubuntu1)\n", VersionInfo{}, ErrNotVMM},
		{"empty", "\n\n", VersionInfo{}, ErrNotVMM},
		{"no number", "Firecracker\n", VersionInfo{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseVersion([]byte(tt.out))
			if tt.want == (VersionInfo{}) {
				if err == nil {
					t.Fatalf("ParseVersion = %v, want an error", got)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("error %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseVersion (-want +got):\n%s", diff)
			}
		})
	}
}

func TestVersionRunsBinary(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	fake := &system.Fake{Handler: func(argv []string, _ []byte) ([]byte, error) {
		return []byte("banger-vmm-qemu 0.1.0\n"), nil
	}}
	d := New(Deps{Plain: fake})
	got, err := d.Version(context.Background(), exe)
	if err != nil {
		t.Fatal(err)
	}
	if want := (VersionInfo{KindQEMU, "0.1.0"}); got != want {
		t.Errorf("Version = %v, want %v", got, want)
	}
	if diff := cmp.Diff([]string{exe + " --version"}, fake.CallLines()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}

	// The real runner against the fake VMM binary.
	t.Setenv(envFakeVMM, modeOK)
	got, err = New(Deps{}).Version(context.Background(), exe)
	if err != nil {
		t.Fatal(err)
	}
	if want := (VersionInfo{KindFirecracker, "1.7.0"}); got != want {
		t.Errorf("Version of the fake vmm = %v, want %v", got, want)
	}
	if _, err := New(Deps{}).Version(context.Background(), "/nonexistent/firecracker"); err == nil {
		t.Error("Version of a missing binary succeeded")
	}
}
