package preflight

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"

	"banger/internal/api"
)

func fakeHost(have map[string]bool, root bool) Config {
	return Config{
		VMMBinary: "/usr/bin/banger-vmm-qemu", VMMKind: "qemu",
		LookPath: func(n string) (string, error) {
			if have[n] {
				return "/usr/bin/" + n, nil
			}
			return "", errors.New("not found")
		},
		Stat: func(p string) (os.FileInfo, error) {
			if have[p] {
				return nil, nil
			}
			return nil, fs.ErrNotExist
		},
		Euid: func() int {
			if root {
				return 0
			}
			return 1000
		},
	}
}

func TestCheckPassesOnACompleteHost(t *testing.T) {
	have := map[string]bool{"mkfs.ext4": true, "debugfs": true, "/usr/bin/banger-vmm-qemu": true, "qemu-system-x86_64": true, "/dev/net/tun": true, "iptables": true}
	if err := New(fakeHost(have, true)).Check(context.Background(), "vm start"); err != nil {
		t.Errorf("complete host: %v", err)
	}
}

func TestCheckNamesEveryMissingPieceAndItsFix(t *testing.T) {
	have := map[string]bool{"mkfs.ext4": true, "debugfs": true, "/dev/net/tun": true}
	err := New(fakeHost(have, false)).Check(context.Background(), "vm start")
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodePrecondition {
		t.Fatalf("err = %v, want a precondition error", err)
	}
	for _, want := range []string{"banger-vmm-qemu was not found", "qemu-system-x86_64 is not installed", "iptables is not installed", "CAP_NET_ADMIN"} {
		if !strings.Contains(ae.Message, want) {
			t.Errorf("message %q lacks %q", ae.Message, want)
		}
	}
	for _, want := range []string{"apt-get install qemu-system-x86", "apt-get install iptables", "setcap"} {
		if !strings.Contains(ae.Hint, want) {
			t.Errorf("hint %q lacks %q", ae.Hint, want)
		}
	}
}

func TestOpsCheckOnlyWhatTheyNeed(t *testing.T) {
	c := New(fakeHost(map[string]bool{"e2fsck": true, "resize2fs": true}, false))
	if ps := c.Problems("disk growth"); len(ps) != 0 {
		t.Errorf("disk growth problems = %v", ps)
	}
	if ps := c.Problems("image bootstrap"); len(ps) != 2 || !strings.Contains(ps[0].Fix, "mmdebstrap") {
		t.Errorf("image bootstrap problems = %v", ps)
	}
}
