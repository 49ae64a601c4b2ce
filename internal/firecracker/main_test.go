package firecracker

import (
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"banger/internal/qemuvmm"
)

// The test binary doubles as a fake VMM, chosen by these
// environment variables, so that process handling is tested for real
// without root or a Firecracker binary.
const (
	// envFakeVMM selects the fake VMM and its behaviour (a fakeMode).
	envFakeVMM = "BANGER_TEST_FAKE_VMM"
	// envFakeRecord names a file that receives the fake VMM's API calls.
	envFakeRecord = "BANGER_TEST_FAKE_VMM_RECORD"
)

// Behaviours of the fake VMM.
const (
	modeOK         = "ok"          // exits 0 after SendCtrlAltDel
	modeIgnoreCAD  = "ignore-cad"  // ignores SendCtrlAltDel, dies on SIGTERM
	modeMissCAD    = "miss-cad"    // misses the first SendCtrlAltDel (a guest still booting), exits 0 after the second
	modeIgnoreTerm = "ignore-term" // ignores SendCtrlAltDel and SIGTERM
	modeExitEarly  = "exit-early"  // exits 3 before making its socket
	modeNoSocket   = "no-socket"   // never makes its socket
	modeFailDrive  = "fail-drive"  // PUT /drives/… fails
	// modeQEMU runs the real banger-vmm-qemu instead of a fake.
	modeQEMU = "banger-vmm-qemu"
)

func TestMain(m *testing.M) {
	switch {
	case os.Getenv(envFakeVMM) == modeQEMU:
		os.Exit(qemuvmm.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	case os.Getenv(envFakeVMM) != "":
		os.Exit(fakeVMMMain(os.Getenv(envFakeVMM), os.Args[1:]))
	}
	os.Exit(m.Run())
}

func fakeVMMMain(mode string, args []string) int {
	var socket string
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--version":
			fmt.Println("Firecracker v1.7.0")
			fmt.Println()
			return 0
		case "--api-sock":
			i++
			if i < len(args) {
				socket = args[i]
			}
		case "--id":
			i++
		default:
			fmt.Fprintf(os.Stderr, "fake vmm: unknown argument %q\n", args[i])
			return 2
		}
	}
	if socket == "" {
		fmt.Fprintln(os.Stderr, "fake vmm: --api-sock is required")
		return 2
	}
	switch mode {
	case modeExitEarly:
		fmt.Fprintln(os.Stderr, "fake vmm: cannot open /dev/kvm")
		return 3
	case modeNoSocket:
		time.Sleep(time.Minute)
		return 0
	case modeIgnoreTerm:
		signal.Ignore(syscall.SIGTERM)
	}
	cad := make(chan struct{}, 1)
	api := &fakeAPI{console: os.Stdout}
	switch mode {
	case modeOK:
		api.onCtrlAltDel = func() { cad <- struct{}{} }
	case modeMissCAD:
		var presses atomic.Int32
		api.onCtrlAltDel = func() {
			if presses.Add(1) == 2 {
				cad <- struct{}{}
			}
		}
	}
	if mode == modeFailDrive {
		api.failPrefix = "/drives/"
	}
	if path := os.Getenv(envFakeRecord); path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake vmm:", err)
			return 1
		}
		defer f.Close()
		api.record = f
	}
	stop, err := api.serve(socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake vmm:", err)
		return 1
	}
	defer stop()
	fmt.Println("fake vmm: serving", socket)
	<-cad
	fmt.Println("fake console: reboot: machine restart")
	return 0
}
