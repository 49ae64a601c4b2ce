package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestMain checks, after the tests, that Main removed the binaries that
// TestBinariesAreBuiltOnce built.
func TestMain(m *testing.M) {
	code := Main(m)
	if binDir != "" {
		if _, err := os.Stat(binDir); !os.IsNotExist(err) {
			fmt.Fprintf(os.Stderr, "FAIL: testutil.Main left the test binaries in %s (stat: %v)\n", binDir, err)
			code = 1
		}
	}
	os.Exit(code)
}

func TestBinariesAreBuiltOnce(t *testing.T) {
	Short(t, "builds banger, bangerd and banger-vmm-qemu")
	dir := Binaries(t)
	for _, name := range []string{"banger", "bangerd", "banger-vmm-qemu"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm()&0o100 == 0 {
			t.Errorf("%s: %v, mode %v; want an executable", name, err, fi)
		}
	}
	if again := Binaries(t); again != dir {
		t.Errorf("second call built again into %s, want %s", again, dir)
	}
}
