package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// The binaries Binaries built for this test process, removed by Main.
var (
	binOnce sync.Once
	binDir  string
	binErr  error
	binOut  []byte
	inMain  atomic.Bool
)

// Main runs a package's tests and then removes what Binaries built for them
// (about 60 MB). Every package that calls Binaries needs it in TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testutil.Main(m)) }
func Main(m *testing.M) int {
	inMain.Store(true)
	code := m.Run()
	if err := removeBinaries(); err != nil {
		fmt.Fprintf(os.Stderr, "testutil: %v\n", err)
	}
	return code
}

// removeBinaries deletes the directory Binaries built into, if it did.
func removeBinaries() error {
	if binDir == "" {
		return nil
	}
	if err := os.RemoveAll(binDir); err != nil {
		return fmt.Errorf("removing test binaries %s: %w", binDir, err)
	}
	return nil
}

// Binaries builds banger, bangerd, banger-vmm-qemu and banger-helper once per test
// process and returns the directory holding them. Main removes the
// directory after the tests; a package without it fails here.
func Binaries(t testing.TB) string {
	t.Helper()
	if !inMain.Load() {
		t.Fatal("testutil.Binaries: the package's TestMain must call testutil.Main, which removes the binaries after the tests")
	}
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
