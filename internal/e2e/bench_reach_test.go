package e2e

import (
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Issue 14 targets, measured side by side in one run with the real
// binaries and a real guest (bench/reach.sh):
//   - `vm exec NAME -- true` p50 <= 1.1 x `ssh` over an open ControlMaster;
//   - `vm cp` of 200 MiB >= 0.9 x the throughput of `tar | ssh`;
//   - throughput through a forward >= 0.9 x connecting to the guest's
//     address directly.

// sshArgs are the OpenSSH options that reach the env's VM with banger's
// key and pinned host key.
func (e *env) sshArgs(name string) []string {
	data := filepath.Join(e.home, "data", "banger", "ssh")
	return []string{"-i", filepath.Join(data, "id_ed25519"), "-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile=" + filepath.Join(data, "known_hosts"), "-o", "StrictHostKeyChecking=yes",
		"-o", "HostKeyAlias=" + name + ".vm", "-o", "BatchMode=yes"}
}

// timed runs argv (in the env's namespace) and returns how long it took.
func (e *env) timed(b *testing.B, stdin io.Reader, argv ...string) time.Duration {
	b.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", e.netns}, argv...)...)
	cmd.Env = append(cleanEnv(), e.vars...)
	cmd.Stdin = stdin
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%v: %v: %s", argv, err, out)
	}
	return time.Since(start)
}

func newReachBench(b *testing.B) (*env, string) {
	benchGate(b)
	e := newGuestEnv(b)
	e.must("image", "bootstrap", "base")
	e.must("vm", "create", "r", "--cpus", "2", "--memory", "1G", "--disk", "2G")
	b.Cleanup(func() { e.banger("vm", "rm", "--force", "r") })
	return e, e.vm("r").IP
}

func BenchmarkExecVersusSSHMaster(b *testing.B) {
	e, ip := newReachBench(b)
	ctl := filepath.Join(e.run, "cm")
	master := append([]string{"ssh"}, e.sshArgs("r")...)
	master = append(master, "-o", "ControlMaster=yes", "-o", "ControlPath="+ctl, "-o", "ControlPersist=300", "-fN", "root@"+ip)
	e.timed(b, nil, master...)
	b.Cleanup(func() {
		_ = exec.Command("ip", "netns", "exec", e.netns, "ssh", "-o", "ControlPath="+ctl, "-O", "exit", "root@"+ip).Run()
	})
	banger := filepath.Join(e.bin, "banger")
	mux := []string{"ssh", "-o", "ControlPath=" + ctl, "root@" + ip, "true"}
	// vm exec runs the program, never a shell builtin; ssh's `true` is
	// bash's builtin. The same work in the guest is /usr/bin/true.
	muxBin := []string{"ssh", "-o", "ControlPath=" + ctl, "root@" + ip, "/usr/bin/true"}
	rounds := 40
	var viaBanger, viaSSH, viaSSHBin []time.Duration
	for i := 0; i < 3; i++ { // warm all
		e.timed(b, nil, banger, "vm", "exec", "r", "--", "true")
		e.timed(b, nil, mux...)
		e.timed(b, nil, muxBin...)
	}
	for i := 0; i < rounds; i++ {
		viaBanger = append(viaBanger, e.timed(b, nil, banger, "vm", "exec", "r", "--", "true"))
		viaSSH = append(viaSSH, e.timed(b, nil, mux...))
		viaSSHBin = append(viaSSHBin, e.timed(b, nil, muxBin...))
	}
	bm, sm, sbm := median(viaBanger), median(viaSSH), median(viaSSHBin)
	ratio := float64(bm) / float64(sm)
	b.ReportMetric(ratio, "ratio")
	b.ReportMetric(float64(bm)/float64(sbm), "ratio-same-work")
	fmt.Printf("vm exec NAME -- true: p50 %.1f ms; ssh over an open ControlMaster: `true` (bash's builtin) p50 %.1f ms, ratio %.3f (target <= 1.1); `/usr/bin/true` (the same work in the guest) p50 %.1f ms, ratio %.3f (%d each, alternating)\n",
		ms(bm), ms(sm), ratio, ms(sbm), float64(bm)/float64(sbm), rounds)
}

func BenchmarkCpVersusTarSSH(b *testing.B) {
	e, ip := newReachBench(b)
	src := filepath.Join(e.home, "payload")
	if err := os.MkdirAll(src, 0o755); err != nil {
		b.Fatal(err)
	}
	const size = 200 << 20
	for i := 0; i < 4; i++ {
		data := make([]byte, size/4)
		_, _ = rand.Read(data)
		if err := os.WriteFile(filepath.Join(src, "part"+strconv.Itoa(i)), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	banger := filepath.Join(e.bin, "banger")
	tarSSH := strings.Join(append(append([]string{"tar", "-C", e.home, "-c", "payload", "|", "ssh"}, e.sshArgs("r")...), "root@"+ip, "tar", "-x", "-C", "/work/b"), " ")
	rounds := 3
	var viaBanger, viaSSH []time.Duration
	for i := 0; i < rounds; i++ {
		e.must("vm", "exec", "r", "--", "sh", "-c", "rm -rf /work/a /work/b && mkdir -p /work/a /work/b")
		viaBanger = append(viaBanger, e.timed(b, nil, banger, "vm", "cp", src, "r:/work/a/"))
		viaSSH = append(viaSSH, e.timed(b, nil, "sh", "-c", tarSSH))
	}
	bm, sm := median(viaBanger), median(viaSSH)
	mbps := func(d time.Duration) float64 { return float64(size) / (1 << 20) / d.Seconds() }
	ratio := mbps(bm) / mbps(sm)
	b.ReportMetric(ratio, "ratio")
	fmt.Printf("vm cp of 200 MiB into the guest: %.1f MiB/s; tar | ssh: %.1f MiB/s; throughput ratio %.3f (%d each, alternating; target >= 0.9)\n",
		mbps(bm), mbps(sm), ratio, rounds)
}

func BenchmarkForwardVersusDirect(b *testing.B) {
	e, ip := newReachBench(b)
	e.must("vm", "cp", os.Args[0], "r:/root/e2e.test")
	e.must("vm", "exec", "r", "--", "sh", "-c", "BANGER_E2E_TCP_SINK=:9000 nohup /root/e2e.test -test.run '^TestTCPSinkHelper$' >/dev/null 2>&1 &")
	e.must("vm", "forward", "r", "19000:9000")
	const size = 200 << 20
	send := func(addr string) time.Duration {
		var d time.Duration
		e.inNetns(func() {
			d = pushTo(b, addr, size)
		})
		return d
	}
	send(ip + ":9000") // the sink is up
	rounds := 5
	var direct, forwarded []time.Duration
	for i := 0; i < rounds; i++ {
		direct = append(direct, send(ip+":9000"))
		forwarded = append(forwarded, send("127.0.0.1:19000"))
	}
	dm, fm := median(direct), median(forwarded)
	mbps := func(d time.Duration) float64 { return float64(size) / (1 << 20) / d.Seconds() }
	ratio := mbps(fm) / mbps(dm)
	b.ReportMetric(ratio, "ratio")
	fmt.Printf("tcp into the guest through a forward: %.1f MiB/s; to the guest's address directly: %.1f MiB/s; ratio %.3f (200 MiB, %d each, alternating; target >= 0.9)\n",
		mbps(fm), mbps(dm), ratio, rounds)
}

// pushTo sends size bytes to the sink at addr and waits for its count, on
// the calling goroutine (whose thread may be in a namespace).
func pushTo(b *testing.B, addr string, size int) time.Duration {
	b.Helper()
	buf := make([]byte, 256<<10)
	_, _ = rand.Read(buf)
	start := time.Now()
	var c net.Conn
	var err error
	for i := 0; i < 50; i++ {
		if c, err = net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		b.Fatalf("dialling %s: %v", addr, err)
	}
	defer c.Close()
	for sent := 0; sent < size; sent += len(buf) {
		if _, err := c.Write(buf); err != nil {
			b.Fatalf("sending to %s: %v", addr, err)
		}
	}
	_ = c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || strings.TrimSpace(string(got)) != strconv.Itoa(size) {
		b.Fatalf("the sink at %s counted %q (%v), want %d", addr, got, err, size)
	}
	return time.Since(start)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// TestTCPSinkHelper is the TCP sink BenchmarkForwardVersusDirect runs in
// the guest: it reads each connection to its end and answers the count.
func TestTCPSinkHelper(t *testing.T) {
	addr := os.Getenv("BANGER_E2E_TCP_SINK")
	if addr == "" {
		t.Skip("helper process for BenchmarkForwardVersusDirect")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			n, _ := io.Copy(io.Discard, c)
			fmt.Fprintln(c, n)
		}()
	}
}
