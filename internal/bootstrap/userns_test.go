package bootstrap

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestModeFor(t *testing.T) {
	if ModeFor(0) != ModeRoot || ModeFor(1000) != ModeRootless {
		t.Errorf("ModeFor(0), ModeFor(1000) = %s, %s", ModeFor(0), ModeFor(1000))
	}
	if got := ModeRoot.argv("mkfs.ext4", "-d", "t", "i"); !cmp.Equal(got, []string{"mkfs.ext4", "-d", "t", "i"}) {
		t.Errorf("root argv = %q", got)
	}
	want := []string{"unshare", "--user", "--map-auto", "--map-root-user", "--", "rm", "-rf", "--one-file-system", "--", "/c/t"}
	if got := ModeRootless.argv("rm", "-rf", "--one-file-system", "--", "/c/t"); !cmp.Equal(got, want) {
		t.Errorf("rootless argv = %q, want %q", got, want)
	}
}
