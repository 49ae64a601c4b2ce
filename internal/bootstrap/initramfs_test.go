package bootstrap

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Captured from linux-image-6.1.0-50-cloud-amd64 (trimmed).
const sampleModulesDep = `kernel/fs/fuse/virtiofs.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko kernel/fs/fuse/fuse.ko
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/net/core/failover.ko:
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/net/vmw_vsock/vsock.ko:
kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko: kernel/net/vmw_vsock/vsock.ko
kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko: kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko kernel/net/vmw_vsock/vsock.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/fs/overlayfs/overlay.ko:
`

const sampleModulesBuiltin = `kernel/drivers/char/hw_random/rng-core.ko
kernel/fs/ext4/ext4.ko
`

func TestResolveModules(t *testing.T) {
	idx, err := ParseModuleIndex([]byte(sampleModulesDep), []byte(sampleModulesBuiltin))
	if err != nil {
		t.Fatal(err)
	}
	mods, err := idx.ResolveModules(append(DefaultModules(), "ext4", "rng-core"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range mods {
		got = append(got, m.Name)
	}
	want := []string{"virtio_ring", "virtio", "virtio_mmio", "virtio_blk", "failover", "net_failover", "virtio_net",
		"vsock", "vmw_vsock_virtio_transport_common", "vmw_vsock_virtio_transport", "virtio_rng", "overlay"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("load order mismatch (-want +got):\n%s", diff)
	}
	if mods[len(mods)-2].Path != "kernel/drivers/char/hw_random/virtio-rng.ko" {
		t.Errorf("virtio_rng path = %s", mods[len(mods)-2].Path)
	}
	if _, err := idx.ResolveModules([]string{"virtio_blk", "no_such_module"}); err == nil || !strings.Contains(err.Error(), "no_such_module") {
		t.Errorf("missing module: err = %v, want it named", err)
	}
}

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/drivers/char/hw_random/virtio-rng.ko": "virtio_rng",
		"virtio_net.ko.xz":                            "virtio_net",
		"a/b/vsock.ko.zst":                            "vsock",
		"virtio-rng":                                  "virtio_rng",
	} {
		if got := ModuleName(in); got != want {
			t.Errorf("ModuleName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWriteInitramfs(t *testing.T) {
	spec := InitramfsSpec{
		KernelVersion: "6.1.0-50-cloud-amd64",
		Busybox:       []byte("\x7fELF busybox"),
		Modules:       []ModuleFile{{Name: "virtio_ring", Data: []byte("ring")}, {Name: "virtio", Data: []byte("virtio")}},
	}
	var a, b bytes.Buffer
	if err := WriteInitramfs(&a, spec); err != nil {
		t.Fatal(err)
	}
	if err := WriteInitramfs(&b, spec); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("WriteInitramfs is not deterministic")
	}
	zr, err := gzip.NewReader(&a)
	if err != nil {
		t.Fatal(err)
	}
	cr := NewCPIOReader(zr)
	files := map[string]string{}
	for {
		h, err := cr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(cr)
		files[h.Name] = string(data) + h.Linkname
	}
	for name, want := range map[string]string{
		"bin/busybox": "\x7fELF busybox",
		"bin/sh":      "busybox",
		"lib/modules/6.1.0-50-cloud-amd64/virtio_ring.ko": "ring",
		"lib/modules/6.1.0-50-cloud-amd64/virtio.ko":      "virtio",
		"dev/console": "",
	} {
		if got, ok := files[name]; !ok || got != want {
			t.Errorf("%s = %q (present %v), want %q", name, got, ok, want)
		}
	}
	init := files["init"]
	ring := strings.Index(init, "load virtio_ring /lib/modules/6.1.0-50-cloud-amd64/virtio_ring.ko\n")
	virtio := strings.Index(init, "load virtio /lib/modules/6.1.0-50-cloud-amd64/virtio.ko\n")
	if ring < 0 || virtio < ring {
		t.Errorf("init does not load virtio_ring before virtio:\n%s", init)
	}
}

// TestInitScriptSyntax parses the rendered /init with a POSIX shell.
func TestInitScriptSyntax(t *testing.T) {
	sh, err := exec.LookPath("dash")
	if err != nil {
		if sh, err = exec.LookPath("sh"); err != nil {
			t.Skip("needs a POSIX shell")
		}
	}
	script, err := RenderInit("6.1.0-test", DefaultModules())
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "init")
	os.WriteFile(p, []byte(script), 0o755)
	if out, err := exec.Command(sh, "-n", p).CombinedOutput(); err != nil {
		t.Errorf("%s -n init: %v\n%s", sh, err, out)
	}
}

// TestInitNetworkParsing runs the ip= parsing part of /init against a fake
// ifconfig/route/hostname to check the commands it derives.
func TestInitNetworkParsing(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("needs a POSIX shell")
	}
	script, err := RenderInit("v", nil)
	if err != nil {
		t.Fatal(err)
	}
	start := strings.Index(script, "# ip=<client>")
	end := strings.Index(script, "[ -x \"/newroot$init\" ]")
	if start < 0 || end < start {
		t.Fatal("network section markers not found in init")
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "newroot/etc"), 0o755)
	os.MkdirAll(filepath.Join(dir, "sys/class/net/eth0"), 0o755)
	section := strings.NewReplacer("/newroot/", dir+"/newroot/", "/sys/class/net/", dir+"/sys/class/net/").Replace(script[start:end])
	prog := `log() { echo "log $*"; }
ifconfig() { echo "ifconfig $*"; }
route() { echo "route $*"; }
hostname() { echo "hostname $*"; }
mode=rw
ip=10.0.0.2::10.0.0.1:255.255.255.0:dev:eth0:off:10.0.0.1
` + section
	out, err := exec.Command(sh, "-c", prog).CombinedOutput()
	if err != nil {
		t.Fatalf("running network section: %v\n%s", err, out)
	}
	want := "ifconfig eth0 10.0.0.2 netmask 255.255.255.0 up\nroute add default gw 10.0.0.1 dev eth0\nhostname dev\n"
	if string(out) != want {
		t.Errorf("commands:\n%s\nwant:\n%s", out, want)
	}
	resolv, _ := os.ReadFile(filepath.Join(dir, "newroot/etc/resolv.conf"))
	if !strings.Contains(string(resolv), "nameserver 10.0.0.1\n") {
		t.Errorf("resolv.conf = %q", resolv)
	}
}

// TestInitRunsOnlyLinkedApplets runs the rendered /init for a layered
// boot with stub applets in place of busybox's, and only those the
// initramfs links: a command it does not link fails the run ("not found").
// It also checks the boot marks reach the kernel log.
func TestInitRunsOnlyLinkedApplets(t *testing.T) {
	dir, calls, kmsg := runInit(t, false)
	for _, want := range []string{
		"insmod /lib/modules/6.1.0-test/virtio_blk.ko",
		"findfs LABEL=banger-root", "findfs LABEL=banger-layer",
		"mount -t overlay overlay -o lowerdir=/base,upperdir=/layer/upper,workdir=/layer/work,redirect_dir=off,metacopy=off,index=off " + dir + "/newroot",
		"mount -t ext4 -o rw,noatime /dev/vd-banger-work " + dir + "/newroot/work",
		"ifconfig eth0 10.0.0.2 netmask 255.255.255.0 up",
		"rm -rf " + dir + "/newroot/tmp", "mkdir -m 1777 " + dir + "/newroot/tmp",
		// /init's own arguments go on to the real init, untouched.
		"switch_root " + dir + "/newroot /sbin/init kernel-arg",
	} {
		if !strings.Contains(calls, want+"\n") {
			t.Errorf("init did not run %q; it ran:\n%s", want, calls)
		}
	}
	// Without a host key on the root, systemd starts sshd.
	if strings.Contains(calls, "chroot") {
		t.Errorf("init started sshd on a root without a host key:\n%s", calls)
	}
	if want := "<5>banger-boot: initramfs 1.25\n<5>banger-boot: switch-root 1.25\n"; kmsg != want {
		t.Errorf("kernel log = %q, want %q", kmsg, want)
	}
}

// TestInitStartsSSHDEarly: with a host key on the root, /init mounts what
// sshd needs as systemd would, starts sshd in the root, marks it for
// ssh.service to adopt, and marks the boot timeline when sshd listens.
func TestInitStartsSSHDEarly(t *testing.T) {
	dir, calls, kmsg := runInit(t, true)
	root := dir + "/newroot"
	last := -1
	for _, want := range []string{
		"mount --move /dev " + root + "/dev",
		"rm -rf " + root + "/tmp",
		"mount -t proc -o nosuid,nodev,noexec proc " + root + "/proc",
		"mount -t devpts -o nosuid,noexec,mode=0620,gid=5 devpts " + root + "/dev/pts",
		"mount -t tmpfs -o nosuid,nodev,strictatime,mode=0755,size=20%,nr_inodes=800k tmpfs " + root + "/run",
		"mkdir -m 0755 " + root + "/run/sshd",
		"mkdir -m 1777 " + root + "/run/lock",
		"chroot " + root + " /usr/sbin/sshd",
		"switch_root " + root + " /sbin/init kernel-arg",
	} {
		i := strings.Index(calls, want+"\n")
		if i < 0 {
			t.Errorf("init did not run %q; it ran:\n%s", want, calls)
			continue
		}
		if i < last {
			t.Errorf("init ran %q too early:\n%s", want, calls)
		}
		last = i
	}
	if _, err := os.Stat(filepath.Join(root, "run/banger-early-sshd")); err != nil {
		t.Errorf("init left no mark for ssh.service to adopt its sshd: %v", err)
	}
	if want := "<5>banger-boot: initramfs 1.25\n<5>banger-boot: sshd 1.25\n<5>banger-boot: switch-root 1.25\n"; kmsg != want {
		t.Errorf("kernel log = %q, want %q", kmsg, want)
	}
}

// runInit runs the rendered /init with every applet a stub that records
// its arguments, in a directory standing in for the initramfs, with a
// root that has sshd and, when hostKey, its host key. It returns the
// directory, the applet calls and what /init wrote to the kernel log.
func runInit(t *testing.T, hostKey bool) (dir, calls, kmsg string) {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("needs a POSIX shell")
	}
	script, err := RenderInit("6.1.0-test", DefaultModules())
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	for _, d := range []string{"bin", "proc", "dev", "sys/class/net/eth0", "newroot/sbin", "newroot/etc/ssh", "newroot/usr/sbin", "newroot/run", "newroot/tmp"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	cmdline := "console=ttyS0 root=LABEL=banger-root ro banger.layer=LABEL=banger-layer ip=10.0.0.2::10.0.0.1:255.255.255.0:dev:eth0:off:10.0.0.1"
	os.WriteFile(filepath.Join(dir, "proc/cmdline"), []byte(cmdline+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "proc/uptime"), []byte("1.25 0.50\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "newroot/sbin/init"), nil, 0o755)
	os.WriteFile(filepath.Join(dir, "newroot/usr/sbin/sshd"), nil, 0o755)
	if hostKey {
		os.WriteFile(filepath.Join(dir, "newroot/etc/ssh/ssh_host_ed25519_key"), []byte("key"), 0o600)
	}
	os.WriteFile(filepath.Join(dir, "dev/console"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "dev/kmsg"), nil, 0o644)
	callFile := filepath.Join(dir, "calls")
	for _, a := range initApplets() {
		stub := "#!/bin/sh\necho \"" + a + " $*\" >>" + callFile + "\n"
		switch a {
		case "cat":
			stub += "exec /bin/cat \"$@\"\n"
		case "findfs":
			stub += "echo /dev/vd-${1#LABEL=}\n"
		case "chroot":
			// sshd writes its pid file once it listens.
			stub += "echo 123 >" + dir + "/newroot/run/sshd.pid\n"
		}
		os.WriteFile(filepath.Join(dir, "bin", a), []byte(stub), 0o755)
	}
	// The script's absolute paths, moved into dir.
	script = strings.NewReplacer("export PATH=/bin", "export PATH="+dir+"/bin", "/proc/", dir+"/proc/", "/dev/console", dir+"/dev/console",
		"k=/dev/kmsg", "k="+dir+"/dev/kmsg", ">$k", ">>$k", "/sys/", dir+"/sys/", "/newroot", dir+"/newroot").Replace(script)
	out, err := exec.Command(sh, "-c", script, "init", "kernel-arg").CombinedOutput()
	console, _ := os.ReadFile(filepath.Join(dir, "dev/console"))
	if err != nil {
		t.Fatalf("init failed: %v\n%s%s", err, out, console)
	}
	if strings.Contains(string(console), "not found") {
		t.Errorf("init ran a command the initramfs does not link:\n%s", console)
	}
	got, _ := os.ReadFile(callFile)
	k, _ := os.ReadFile(filepath.Join(dir, "dev/kmsg"))
	return dir, string(got), string(k)
}
