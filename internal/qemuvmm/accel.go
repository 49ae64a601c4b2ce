package qemuvmm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// Acceleration kinds.
const (
	AccelKVM = "kvm"
	AccelTCG = "tcg"
)

// Accel is the acceleration QEMU will use.
type Accel struct {
	// Kind is AccelKVM or AccelTCG.
	Kind string
	// Reason says why it was chosen, for the log.
	Reason string
	// TSCKHz is the host TSC frequency in kHz (0 when unknown). Under TCG
	// the guest TSC runs at the host's rate and the guest is told so.
	TSCKHz int64
}

// HostFacts are the host observations the accelerator probe decides on.
// They are gathered by ReadHostFacts and kept as data so that the decision
// (ChooseAccel) is a pure function.
type HostFacts struct {
	// KVMErr is the error opening /dev/kvm read-write, nil when it opened.
	KVMErr error
	// Modules are the loaded kernel modules (names under /sys/module).
	Modules map[string]bool
	// KernelLog is the kernel log (dmesg), possibly empty.
	KernelLog []byte
	// CPUInfo is /proc/cpuinfo.
	CPUInfo []byte
}

// ReadHostFacts gathers HostFacts. dmesg, when given, returns the kernel
// log; errors from it only mean the TSC frequency falls back to cpuinfo.
func ReadHostFacts(ctx context.Context, dmesg func(ctx context.Context) ([]byte, error)) HostFacts {
	var h HostFacts
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err != nil {
		h.KVMErr = err
	} else {
		f.Close()
	}
	h.Modules = map[string]bool{}
	for _, m := range []string{"kvm_pvm", "kvm_intel", "kvm_amd"} {
		if _, err := os.Stat("/sys/module/" + m); err == nil {
			h.Modules[m] = true
		}
	}
	if dmesg != nil {
		h.KernelLog, _ = dmesg(ctx)
	}
	h.CPUInfo, _ = os.ReadFile("/proc/cpuinfo")
	return h
}

// ChooseAccel decides between KVM and TCG. The mere presence of /dev/kvm
// is not enough: a PVM-only /dev/kvm (module kvm_pvm) cannot run a stock
// guest kernel and makes QEMU abort on MSR setup, so it means TCG. want is
// "auto", "kvm" or "tcg"; the last two force the choice.
func ChooseAccel(want string, h HostFacts) (Accel, error) {
	a := Accel{TSCKHz: HostTSCKHz(h.KernelLog, h.CPUInfo)}
	switch want {
	case "", "auto":
	case AccelKVM:
		a.Kind, a.Reason = AccelKVM, "forced by --accel kvm"
		return a, nil
	case AccelTCG:
		a.Kind, a.Reason = AccelTCG, "forced by --accel tcg"
		return a, nil
	default:
		return a, fmt.Errorf("choosing acceleration: unknown --accel %q (want auto, kvm or tcg)", want)
	}
	a.Kind = AccelTCG
	switch {
	case h.KVMErr != nil && errorsIsNotExist(h.KVMErr):
		a.Reason = "/dev/kvm does not exist"
	case h.KVMErr != nil:
		a.Reason = fmt.Sprintf("/dev/kvm is not usable (%v)", h.KVMErr)
	case h.Modules["kvm_pvm"] && !h.Modules["kvm_intel"] && !h.Modules["kvm_amd"]:
		a.Reason = "/dev/kvm is PVM-only (module kvm_pvm), which cannot run a stock guest kernel"
	default:
		a.Kind, a.Reason = AccelKVM, "/dev/kvm is usable"
	}
	return a, nil
}

func errorsIsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

var (
	refinedTSC  = regexp.MustCompile(`tsc: Refined TSC clocksource calibration: ([0-9]+)\.([0-9]{3}) MHz`)
	detectedTSC = regexp.MustCompile(`tsc: Detected ([0-9]+)\.([0-9]{3}) MHz (processor|TSC)`)
)

// HostTSCKHz returns the host TSC frequency in kHz from the kernel log (the
// refined calibration when present, else the detected frequency), falling
// back to the "cpu MHz" of /proc/cpuinfo when the CPU has a constant TSC.
// It returns 0 when none of them tells.
func HostTSCKHz(kernelLog, cpuinfo []byte) int64 {
	for _, re := range []*regexp.Regexp{refinedTSC, detectedTSC} {
		all := re.FindAllSubmatch(kernelLog, -1)
		if len(all) == 0 {
			continue
		}
		m := all[len(all)-1]
		mhz, _ := strconv.ParseInt(string(m[1]), 10, 64)
		frac, _ := strconv.ParseInt(string(m[2]), 10, 64)
		return mhz*1000 + frac
	}
	var mhz string
	constant := false
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "cpu MHz":
			if mhz == "" {
				mhz = strings.TrimSpace(v)
			}
		case "flags":
			for _, f := range strings.Fields(v) {
				if f == "constant_tsc" {
					constant = true
				}
			}
		}
		if mhz != "" && constant {
			break
		}
	}
	if mhz == "" || !constant {
		return 0
	}
	f, err := strconv.ParseFloat(mhz, 64)
	if err != nil || f <= 0 {
		return 0
	}
	return int64(f*1000 + 0.5)
}
