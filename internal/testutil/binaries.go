package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	binOnce sync.Once
	binDir  string
	binErr  error
	binOut  []byte
)

// Binaries builds banger, bangerd, banger-vmm-qemu and banger-helper once per test
// process and returns the directory holding them. The directory is removed
// when the process exits through TestMain-less cleanup of the OS temp dir.
func Binaries(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		binDir, binErr = os.MkdirTemp("", "banger-bin-")
		if binErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/", "./cmd/banger", "./cmd/bangerd", "./cmd/banger-vmm-qemu", "./cmd/banger-helper")
		cmd.Dir = root
		binOut, binErr = cmd.CombinedOutput()
	})
	if binErr != nil {
		t.Fatalf("building banger binaries: %v\n%s", binErr, binOut)
	}
	return binDir
}
