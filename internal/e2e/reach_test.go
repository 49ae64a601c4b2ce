package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"banger/internal/system"
	"banger/internal/testutil"
)

// bangerIn runs the CLI with stdin and returns stdout, stderr and the exit
// code, as a script piping into banger would.
func (e *env) bangerIn(stdin io.Reader, args ...string) ([]byte, []byte, int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	argv := append([]string{"ip", "netns", "exec", e.netns, filepath.Join(e.bin, "banger")}, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(cleanEnv(), e.vars...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	code := 0
	if err := cmd.Run(); err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return out.Bytes(), errb.Bytes(), code
}

// TestReachIntoVMs is issue 14's story, as a script without a terminal
// would run it: create, then at once exec, ssh and cp; files both ways; a
// hostile guest; forwards that outlive restarts; ssh with the generated
// config; an online resize under writes.
func TestReachIntoVMs(t *testing.T) {
	e := newGuestEnv(t)
	e.must("image", "bootstrap", "base")
	e.must("vm", "create", "dev", "--cpus", "1", "--memory", "512M", "--disk", "1536M")
	// No wait between create and the next commands: create returned
	// when the guest answered.
	if got := strings.TrimSpace(e.must("vm", "exec", "dev", "--", "cat", "/etc/hostname")); got != "dev" {
		t.Errorf("exec right after create: hostname %q", got)
	}
	if got := e.ssh("dev", "echo ssh ok"); got != "ssh ok" {
		t.Errorf("ssh right after create: %q", got)
	}
	file := filepath.Join(e.home, "hello.txt")
	if err := os.WriteFile(file, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.must("vm", "cp", file, "dev:/root/")
	if got := strings.TrimSpace(e.must("vm", "exec", "dev", "--", "cat", "/root/hello.txt")); got != "hello" {
		t.Errorf("cp right after create: %q", got)
	}

	t.Run("exec keeps argv, stdin, stderr and status", func(t *testing.T) { testExec(e.with(t)) })
	t.Run("cp round trips a tree both ways", func(t *testing.T) { testCopy(e.with(t)) })
	t.Run("cp from a hostile guest writes nothing outside DST", func(t *testing.T) { testHostileCopy(e.with(t)) })
	t.Run("ssh with the generated config", func(t *testing.T) { testSSHConfig(e.with(t)) })
	t.Run("online resize while a program writes", func(t *testing.T) { testOnlineResize(e.with(t)) })
	t.Run("forwards survive restarts and go with the vm", func(t *testing.T) { testForwards(e.with(t)) })
}

func testExec(e *env) {
	t := e.t.(*testing.T)
	args := []string{"two words", `"quoted" 'single'`, "$HOME", "*", "line\nbreak", "", "back\\slash"}
	out, errOut, code := e.bangerIn(nil, append([]string{"vm", "exec", "dev", "--", "printf", "[%s]\n"}, args...)...)
	want := ""
	for _, a := range args {
		want += "[" + a + "]\n"
	}
	if code != 0 || string(out) != want {
		t.Errorf("exec printf: exit %d\nstdout %q\nwant   %q\nstderr %s", code, out, want, errOut)
	}
	if _, _, code := e.bangerIn(nil, "vm", "exec", "dev", "--", "sh", "-c", "exit 7"); code != 7 {
		t.Errorf("exec sh -c 'exit 7': exit %d", code)
	}
	out, errOut, code = e.bangerIn(nil, "vm", "exec", "dev", "--", "sh", "-c", "echo to-out; echo to-err >&2")
	if code != 0 || string(out) != "to-out\n" || string(errOut) != "to-err\n" {
		t.Errorf("stdout and stderr: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	data := make([]byte, 10<<20)
	_, _ = rand.Read(data)
	out, errOut, code = e.bangerIn(bytes.NewReader(data), "vm", "exec", "dev", "--", "sha256sum")
	sum := sha256Hex(data)
	if code != 0 || !strings.HasPrefix(string(out), sum) {
		t.Errorf("10 MiB of stdin: exit %d, guest sha256 %q, want %s (stderr %s)", code, out, sum, errOut)
	}
	out, _, code = e.bangerIn(bytes.NewReader(data), "vm", "exec", "dev", "--", "cat")
	if code != 0 || !bytes.Equal(out, data) {
		t.Errorf("10 MiB through cat: exit %d, %d bytes back, equal %v", code, len(out), bytes.Equal(out, data))
	}
}

func testCopy(e *env) {
	t := e.t.(*testing.T)
	src := filepath.Join(e.home, "tree")
	mk := func(p string, mode os.FileMode, data string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	mk(filepath.Join(src, "bin", "run"), 0o755, "#!/bin/sh\necho run\n")
	mk(filepath.Join(src, "secret"), 0o600, "s3cret\n")
	if err := os.MkdirAll(filepath.Join(src, "empty"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("bin/run", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	sparse := filepath.Join(src, "sparse.img")
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 512 << 20, 1<<30 - 4096} {
		if _, err := f.WriteAt([]byte("data at "+fmt.Sprint(off)), off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()

	e.must("vm", "exec", "dev", "--", "mkdir", "-p", "/work/in")
	e.must("vm", "cp", src, "dev:/work/in/")
	guest := e.must("vm", "exec", "dev", "--", "sh", "-c",
		"cd /work/in/tree && stat -c '%n %a %F' bin/run secret empty link && readlink link && sha256sum secret bin/run sparse.img && du -k sparse.img")
	for _, want := range []string{"bin/run 755 regular file", "secret 600 regular file", "empty 750 directory", "link 777 symbolic link", "bin/run\n"} {
		if !strings.Contains(guest, want) {
			t.Errorf("in the guest after cp in, missing %q:\n%s", want, guest)
		}
	}
	if !strings.Contains(guest, testutil.FileSHA256(t, sparse)) {
		t.Errorf("sparse file content differs in the guest:\n%s", guest)
	}
	var kb int
	fmt.Sscan(guest[strings.LastIndex(strings.TrimSpace(guest), "\n")+1:], &kb)
	if kb > 64<<10 {
		t.Errorf("the 1 GiB sparse file takes %d KiB in the guest: holes were written", kb)
	}

	back := filepath.Join(e.home, "back")
	e.must("vm", "cp", "dev:/work/in/tree", back)
	for _, p := range []string{"bin/run", "secret", "sparse.img"} {
		if testutil.FileSHA256(t, filepath.Join(src, p)) != testutil.FileSHA256(t, filepath.Join(back, p)) {
			t.Errorf("%s differs after the round trip", p)
		}
		a, _ := os.Stat(filepath.Join(src, p))
		b, _ := os.Stat(filepath.Join(back, p))
		if a.Mode() != b.Mode() {
			t.Errorf("%s mode %v, was %v", p, b.Mode(), a.Mode())
		}
	}
	if l, err := os.Readlink(filepath.Join(back, "link")); err != nil || l != "bin/run" {
		t.Errorf("link after the round trip: %q, %v", l, err)
	}
	if st, err := os.Stat(filepath.Join(back, "empty")); err != nil || !st.IsDir() || st.Mode().Perm() != 0o750 {
		t.Errorf("empty dir after the round trip: %v, %v", st, err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(back, "sparse.img"), &st); err != nil || st.Blocks*512 > 64<<20 {
		t.Errorf("sparse file back on the host occupies %d bytes (%v): holes were written", st.Blocks*512, err)
	}
}

// testHostileCopy replaces the guest's tar with one that sends a crafted
// archive, as a compromised guest could, and checks that the host refuses
// it and writes nothing outside the destination.
func testHostileCopy(e *env) {
	t := e.t.(*testing.T)
	outside := filepath.Join(e.home, "outside")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]tar.Header{
		"dotdot":       {{Name: "x", Typeflag: tar.TypeDir, Mode: 0o755}, {Name: "x/../../outside/pwned", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5}},
		"absolute":     {{Name: "x", Typeflag: tar.TypeDir, Mode: 0o755}, {Name: outside + "/pwned", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5}},
		"symlink-out":  {{Name: "x", Typeflag: tar.TypeDir, Mode: 0o755}, {Name: "x/l", Typeflag: tar.TypeSymlink, Linkname: outside}, {Name: "x/l/pwned", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5}},
		"hardlink-out": {{Name: "x", Typeflag: tar.TypeDir, Mode: 0o755}, {Name: "x/h", Typeflag: tar.TypeLink, Linkname: "../../outside/victim"}},
	}
	if err := os.WriteFile(filepath.Join(outside, "victim"), []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The archives go in while the guest's tar is still the real one.
	for name, hdrs := range cases {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, h := range hdrs {
			h := h
			if err := tw.WriteHeader(&h); err != nil {
				t.Fatal(err)
			}
			if h.Size > 0 {
				_, _ = tw.Write([]byte("evil\n"))
			}
		}
		tw.Close()
		evil := filepath.Join(e.home, name+".tar")
		if err := os.WriteFile(evil, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		e.must("vm", "cp", evil, "dev:/root/")
	}
	e.must("vm", "exec", "dev", "--", "sh", "-c", "mv /usr/bin/tar /usr/bin/tar.real")
	defer e.must("vm", "exec", "dev", "--", "sh", "-c", "mv /usr/bin/tar.real /usr/bin/tar")
	for name := range cases {
		e.must("vm", "exec", "dev", "--", "sh", "-c", "printf '#!/bin/sh\\ncat /root/"+name+".tar\\n' > /usr/bin/tar && chmod 755 /usr/bin/tar")
		dst := filepath.Join(e.home, "dst-"+name)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		_, errOut, code := e.bangerIn(nil, "vm", "cp", "dev:/etc/hostname", dst)
		if code == 0 {
			t.Errorf("%s: the hostile archive was accepted", name)
		} else if !strings.Contains(string(errOut), "copying dev:/etc/hostname") {
			t.Errorf("%s: the refusal does not say what was being done: %s", name, errOut)
		}
		entries, _ := os.ReadDir(outside)
		if len(entries) != 1 {
			t.Errorf("%s: %d entries outside the destination, want only the victim", name, len(entries))
		}
		if got, _ := os.ReadFile(filepath.Join(outside, "victim")); string(got) != "keep\n" {
			t.Errorf("%s: the victim was changed to %q", name, got)
		}
	}
}

func testSSHConfig(e *env) {
	t := e.t.(*testing.T)
	cfg := filepath.Join(e.home, "ssh_config")
	if err := os.WriteFile(cfg, []byte(e.must("ssh-config")), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ip", "netns", "exec", e.netns, "ssh", "-F", cfg, "-o", "BatchMode=yes", "dev.vm", "cat /etc/hostname").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "dev" {
		t.Errorf("ssh -F generated config dev.vm: %v: %s", err, out)
	}
	cfgText, _ := os.ReadFile(cfg)
	if !strings.Contains(string(cfgText), "StrictHostKeyChecking yes") {
		t.Errorf("the generated config does not check host keys strictly:\n%s", cfgText)
	}
}

func testOnlineResize(e *env) {
	t := e.t.(*testing.T)
	writer := make(chan error, 1)
	go func() {
		_, errOut, code := e.bangerIn(nil, "vm", "exec", "dev", "--", "dd", "if=/dev/zero", "of=/work/stream", "bs=1M", "count=200", "conv=fsync")
		if code != 0 {
			writer <- fmt.Errorf("dd exit %d: %s", code, errOut)
			return
		}
		writer <- nil
	}()
	time.Sleep(500 * time.Millisecond)
	e.must("vm", "resize", "dev", "--disk", "3G")
	if err := <-writer; err != nil {
		t.Errorf("the writer during the resize: %v", err)
	}
	if mb := atoi(e.must("vm", "exec", "dev", "--", "sh", "-c", "df -B1M --output=size /work | tail -1")); mb < 2800 {
		t.Errorf("/work is %d MiB after an online resize to 3G", mb)
	}
}

func testForwards(e *env) {
	t := e.t.(*testing.T)
	// An HTTP server and a UDP echo in the guest (the test binary plays
	// the latter, copied in).
	e.must("vm", "exec", "dev", "--", "sh", "-c", "mkdir -p /srv && echo served-by-dev > /srv/index.html")
	startServers := func() {
		e.must("vm", "exec", "dev", "--", "sh", "-c", "nohup busybox httpd -f -p 80 -h /srv >/dev/null 2>&1 &")
		e.must("vm", "exec", "dev", "--", "sh", "-c", "BANGER_E2E_UDP_ECHO=:5353 nohup /root/e2e.test -test.run '^TestUDPEchoHelper$' >/dev/null 2>&1 &")
	}
	e.must("vm", "cp", os.Args[0], "dev:/root/e2e.test")
	startServers()
	e.must("vm", "forward", "dev", "18080:80", "15353:5353/udp")
	check := func(when string) {
		t.Helper()
		e.inNetns(func() {
			var body string
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) {
				// Dial on this goroutine: its thread is the one in the
				// namespace (net/http would dial on another).
				if body = httpGet("127.0.0.1:18080"); strings.Contains(body, "served-by-dev") {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			if !strings.Contains(body, "served-by-dev") {
				t.Errorf("%s: http through the forward gave %q", when, body)
			}
			if got := udpEcho(t, "127.0.0.1:15353", "ping"); got != "ping" {
				t.Errorf("%s: udp echo through the forward gave %q", when, got)
			}
		})
	}
	check("after adding")
	e.must("vm", "stop", "dev")
	e.must("vm", "start", "dev")
	startServers()
	check("after stop and start")
	if err := system.Signal(e.status().PID, 0, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.must("vm", "list") // a new daemon adopts the vm and its forwards
	check("after kill -9 of the daemon")
	e.must("vm", "rm", "--force", "dev")
	e.inNetns(func() {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:18080", time.Second); err == nil {
			c.Close()
			t.Error("the tcp forward still listens after vm rm")
		}
	})
}

// httpGet fetches / from addr over a connection dialled on the calling
// goroutine, and returns the whole response.
func httpGet(addr string) string {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\nHost: dev\r\n\r\n"); err != nil {
		return ""
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

// udpEcho sends msg and returns the answer, retrying for a while (the
// server may still be starting).
func udpEcho(t *testing.T, addr, msg string) string {
	for i := 0; i < 20; i++ {
		c, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(time.Second))
		_, _ = c.Write([]byte(msg))
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		c.Close()
		if err == nil {
			return string(buf[:n])
		}
	}
	return ""
}

// TestUDPEchoHelper is the UDP echo server testForwards runs in the guest.
func TestUDPEchoHelper(t *testing.T) {
	addr := os.Getenv("BANGER_E2E_UDP_ECHO")
	if addr == "" {
		t.Skip("helper process for TestReachIntoVMs")
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Minute)
	buf := make([]byte, 2048)
	for time.Now().Before(deadline) {
		_ = pc.SetReadDeadline(deadline)
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = pc.WriteTo(buf[:n], from)
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
