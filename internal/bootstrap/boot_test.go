package bootstrap_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"banger/internal/bootstrap"
	"banger/internal/testutil"
)

// TestGuestImageBoots boots the bootstrapped image under plain QEMU microvm
// (software emulation, as CI has no usable KVM) with the guest contract's
// kernel command line, waits for the serial console's login prompt with the
// hostname taken from ip=, then asks for an ACPI power-down and expects the
// guest to power off.
func TestGuestImageBoots(t *testing.T) {
	res := testutil.GuestImage(t)
	testutil.RequireTool(t, "qemu-system-x86_64")
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs.ext4")
	if err := bootstrap.CopyFile(context.Background(), res.Rootfs, rootfs); err != nil {
		t.Fatal(err)
	}
	qmpPath := filepath.Join(dir, "qmp.sock")
	appendLine := "console=ttyS0 reboot=k panic=1 root=/dev/vda rw ip=172.30.0.2::172.30.0.1:255.255.255.0:bootcheck:eth0:off:172.30.0.1"
	if khz := tscKHz(); khz > 0 {
		appendLine += fmt.Sprintf(" tsc_early_khz=%d tsc=reliable", khz)
	}
	argv := []string{"qemu-system-x86_64",
		"-M", "microvm,acpi=on", "-accel", "tcg,tb-size=64", "-cpu", "max", "-m", "512", "-smp", "1",
		"-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
		"-kernel", res.Kernel, "-initrd", res.Initrd, "-append", appendLine,
		"-drive", "id=root,file=" + rootfs + ",format=raw,if=none", "-device", "virtio-blk-device,drive=root",
		"-netdev", "user,id=n0,restrict=on", "-device", "virtio-net-device,netdev=n0",
		"-qmp", "unix:" + qmpPath + ",server=on,wait=off",
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The console is read to its end before Wait reports the exit, so
	// after <-exited the transcript is complete.
	var console transcript
	login := make(chan time.Duration, 1)
	exited := make(chan error, 1)
	done := make(chan struct{})
	start := time.Now()
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Split(scanLinesOrPrompt)
		for sc.Scan() {
			console.add(sc.Text())
			if strings.Contains(sc.Text(), "bootcheck login:") {
				login <- time.Since(start)
			}
		}
		exited <- cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill() // qemu is our child: the pid cannot have been reused before Wait
		<-done
	})
	select {
	case d := <-login:
		t.Logf("console reached the login prompt after %s", d.Round(time.Millisecond))
	case err := <-exited:
		t.Fatalf("qemu exited before the login prompt: %v\n%s", err, tail(console.String(), 60))
	case <-time.After(5 * time.Minute):
		cmd.Process.Kill()
		<-exited
		t.Fatalf("no login prompt within 5 minutes:\n%s", tail(console.String(), 60))
	}
	if strings.Contains(console.String(), "banger-init:") {
		t.Errorf("the initramfs reported problems:\n%s", grepLines(console.String(), "banger-init:"))
	}

	powerdown := time.Now()
	if err := qmpCommand(qmpPath, "system_powerdown"); err != nil {
		t.Fatalf("asking for ACPI power-down: %v", err)
	}
	select {
	case <-exited:
		t.Logf("guest powered off %s after the ACPI power button", time.Since(powerdown).Round(time.Millisecond))
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-exited
		t.Fatalf("guest did not power off within 2 minutes of the ACPI power button:\n%s", tail(console.String(), 30))
	}
}

// scanLinesOrPrompt splits on newlines, and also yields a "login: " prompt
// that has no newline yet.
func scanLinesOrPrompt(data []byte, atEOF bool) (int, []byte, error) {
	if i := strings.IndexByte(string(data), '\n'); i >= 0 {
		return i + 1, []byte(strings.TrimRight(string(data[:i]), "\r")), nil
	}
	if i := strings.Index(string(data), "login: "); i >= 0 {
		return i + 7, data[:i+7], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// qmpCommand runs one QMP command without arguments.
func qmpCommand(sock, command string) error {
	conn, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	dec := json.NewDecoder(conn)
	var greeting map[string]any
	if err := dec.Decode(&greeting); err != nil {
		return fmt.Errorf("reading QMP greeting: %w", err)
	}
	for _, c := range []string{"qmp_capabilities", command} {
		if _, err := fmt.Fprintf(conn, `{"execute":%q}`+"\n", c); err != nil {
			return err
		}
		for {
			var reply map[string]any
			if err := dec.Decode(&reply); err != nil {
				return fmt.Errorf("reading QMP reply to %s: %w", c, err)
			}
			if e, ok := reply["error"]; ok {
				return fmt.Errorf("QMP %s: %v", c, e)
			}
			if _, ok := reply["return"]; ok {
				break
			}
		}
	}
	return nil
}

// tscKHz reads the host TSC frequency from the first "cpu MHz" line, which
// on a constant-TSC host is close enough for tsc_early_khz.
func tscKHz() int {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "cpu MHz" {
			mhz, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return int(mhz * 1000)
			}
		}
	}
	return 0
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// transcript is the console output, shared between the reader goroutine
// and the test.
type transcript struct {
	mu sync.Mutex
	b  strings.Builder
}

func (c *transcript) add(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.b.WriteString(line + "\n")
}

func (c *transcript) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.String()
}
