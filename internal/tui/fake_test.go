package tui

import (
	"context"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"banger/internal/api"
	"banger/internal/vm"
)

// cannedClient serves fixed VMs and images, for deterministic frames.
type cannedClient struct {
	mu     sync.Mutex
	vms    []api.VM
	images []api.Image
	logs   map[string]string
	// execs records each Exec as "VM argv…"; execStdin whether one got
	// an input.
	execs     []string
	execStdin bool
}

var _ Client = (*cannedClient)(nil)

// fixedNow is the clock of every golden frame.
var fixedNow = time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)

func newCannedClient() *cannedClient {
	home := "/home/ada/.local/share/banger/vms/"
	state := "/home/ada/.local/state/banger/vms/"
	mk := func(name, state_, ip, image string, cpus, mem int, disk int64, up time.Duration, cpu float64, rssB int64) api.VM {
		v := api.VM{ID: "0123abcd" + name, Name: name, State: state_, Image: image, CPUs: cpus, MemoryMiB: mem, DiskBytes: disk,
			IP: ip, DNSName: name + ".vm", RootDisk: home + name + "/root.ext4", WorkDisk: home + name + "/work.ext4",
			ConsoleLog: state + name + "/console.log", VMMLog: state + name + "/vmm.log",
			RootUsed: 1200 * vm.MiB, WorkUsed: 300 * vm.MiB, CreatedAt: fixedNow.Add(-72 * time.Hour)}
		if state_ == "running" {
			v.PID = 4242 + cpus
			v.StartedAt = fixedNow.Add(-up)
			v.CPUPercent = cpu
			v.RSSBytes = rssB
			v.TAP = "bg-0123abcd"
			v.MAC = "02:fc:01:23:ab:cd"
		}
		return v
	}
	vms := []api.VM{
		mk("dev", "running", "10.213.0.2", "base", 2, 1024, 8*vm.GiB, 2*time.Hour+3*time.Minute, 3.5, 512*vm.MiB),
		mk("web", "stopped", "10.213.0.3", "base", 1, 512, 4*vm.GiB, 0, 0, 0),
		mk("build-cache", "running", "10.213.0.4", "debian", 4, 4096, 32*vm.GiB, 50*time.Hour, 97.25, 3*vm.GiB+400*vm.MiB),
		mk("flaky", "error", "10.213.0.5", "base", 2, 1024, 8*vm.GiB, 0, 0, 0),
	}
	vms[3].Reason = "vmm exited unexpectedly (signal: killed)"
	vms[2].StaleImage = true
	vms[2].Forwards = []string{"127.0.0.1:8080:80/tcp", "127.0.0.1:5353:53/udp"}
	vms[0].Forwards = []string{"0.0.0.0:2222:22/tcp"}
	imgs := []api.Image{
		{ID: "img-base", Name: "base", Source: "bootstrap", KernelVersion: "6.1.0-31-amd64", SizeBytes: 2 * vm.GiB, AllocatedBytes: 900 * vm.MiB, VMs: 3,
			Kernel: "/home/ada/.local/share/banger/images/base/vmlinuz", Initrd: "/home/ada/.local/share/banger/images/base/initrd.img",
			Rootfs: "/home/ada/.local/share/banger/images/base/rootfs.ext4", CreatedAt: fixedNow.Add(-240 * time.Hour)},
		{ID: "img-debian", Name: "debian", Source: "bootstrap", KernelVersion: "6.1.0-31-amd64", SizeBytes: 4 * vm.GiB, AllocatedBytes: 1500 * vm.MiB, VMs: 1, Stale: true,
			Kernel: "/home/ada/.local/share/banger/images/debian/vmlinuz", Initrd: "/home/ada/.local/share/banger/images/debian/initrd.img",
			Rootfs: "/home/ada/.local/share/banger/images/debian/rootfs.ext4", BuildLog: "/home/ada/.local/state/banger/images/debian/build.log", CreatedAt: fixedNow.Add(-1000 * time.Hour)},
	}
	logs := map[string]string{"build-cache": "[    0.000000] Linux version 6.1.0-31-amd64\n[    0.412000] EXT4-fs (vda): mounted filesystem\n[  OK  ] Started ssh.service - OpenBSD Secure Shell server.\n\nDebian GNU/Linux 12 build-cache ttyS0\n\nbuild-cache login: "}
	return &cannedClient{vms: vms, images: imgs, logs: logs}
}

func (c *cannedClient) VMs(ctx context.Context, all bool) ([]api.VM, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]api.VM(nil), c.vms...), nil
}

func (c *cannedClient) CreateVM(ctx context.Context, req api.CreateVMRequest, p func(api.Progress)) (api.VM, []string, error) {
	return api.VM{}, nil, api.Errorf(api.CodeInvalid, "canned")
}

func (c *cannedClient) StartVM(ctx context.Context, name string, w bool, p func(api.Progress)) (api.VM, error) {
	return api.VM{}, api.Errorf(api.CodeInvalid, "canned")
}

func (c *cannedClient) StopVM(ctx context.Context, name string, r api.StopVMRequest, p func(api.Progress)) (api.VM, error) {
	return api.VM{}, api.Errorf(api.CodeInvalid, "canned")
}

func (c *cannedClient) KillVM(ctx context.Context, name string) (api.VM, error) {
	return api.VM{}, api.Errorf(api.CodeInvalid, "canned")
}

func (c *cannedClient) PauseVM(ctx context.Context, name string) (api.VM, error) {
	return api.VM{}, api.Errorf(api.CodeInvalid, "canned")
}

func (c *cannedClient) ResumeVM(ctx context.Context, name string) (api.VM, error) {
	return api.VM{}, api.Errorf(api.CodeInvalid, "canned")
}

func (c *cannedClient) SuspendVM(ctx context.Context, name string, p func(api.Progress)) (api.VM, error) {
	return api.VM{}, api.Errorf(api.CodeInvalid, "canned")
}

func (c *cannedClient) RestartVM(ctx context.Context, name string, wait bool, p func(api.Progress)) (api.VM, error) {
	return api.VM{}, api.Errorf(api.CodeInvalid, "canned")
}

func (c *cannedClient) ResizeVM(ctx context.Context, name string, r api.ResizeVMRequest, p func(api.Progress)) (api.VM, error) {
	return api.VM{}, api.Errorf(api.CodeInvalid, "canned")
}

func (c *cannedClient) RemoveVM(ctx context.Context, name string, r api.RemoveVMRequest) error {
	return api.Errorf(api.CodeInvalid, "canned")
}

func (c *cannedClient) VMLogsTail(ctx context.Context, name, source string, follow bool, tail int, w io.Writer) error {
	c.mu.Lock()
	l, ok := c.logs[name]
	c.mu.Unlock()
	if !ok {
		return api.Errorf(api.CodeNotFound, "vm %s has no log yet", name)
	}
	_, err := io.WriteString(w, l)
	return err
}

// Exec answers like the daemon for a VM that is not running; in a running
// one, the command (argv[2] of `sh -c CMD`) "sleep" runs until cancelled,
// "fail N" writes to stderr and exits N, and any other writes two lines
// of stdout (the command, then "done") and exits 0.
func (c *cannedClient) Exec(ctx context.Context, name string, req api.ExecRequest, stdio api.ExecIO) (int, error) {
	c.mu.Lock()
	c.execs = append(c.execs, name+" "+strings.Join(req.Argv, " "))
	c.execStdin = c.execStdin || stdio.Stdin != nil
	var v *api.VM
	for i := range c.vms {
		if c.vms[i].Name == name {
			v = &c.vms[i]
		}
	}
	c.mu.Unlock()
	switch {
	case v == nil:
		return -1, api.Errorf(api.CodeNotFound, "vm %s not found", name)
	case v.State != "running":
		return -1, api.Errorf(api.CodeConflict, "vm %s is %s, so its guest cannot be reached", name, v.State).
			WithHint("start it with `banger vm start %s`", name)
	case len(req.Argv) != 3:
		return 127, nil
	}
	cmd := req.Argv[2]
	out := func(w io.Writer, s string) {
		if w != nil {
			_, _ = io.WriteString(w, s)
		}
	}
	switch {
	case cmd == "sleep":
		out(stdio.Stdout, "sleeping\n")
		<-ctx.Done()
		return -1, api.Errorf(api.CodeInterrupted, "exec in %s: %v", name, ctx.Err())
	case strings.HasPrefix(cmd, "fail "):
		code, err := strconv.Atoi(strings.TrimPrefix(cmd, "fail "))
		if err != nil {
			return -1, err
		}
		out(stdio.Stdout, "about to fail\n")
		out(stdio.Stderr, "failing with "+strconv.Itoa(code)+"\n")
		return code, nil
	}
	out(stdio.Stdout, cmd+"\n")
	out(stdio.Stdout, "do")
	out(stdio.Stdout, "ne\n")
	return 0, nil
}

func (c *cannedClient) Images(ctx context.Context) ([]api.Image, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]api.Image(nil), c.images...), nil
}

func (c *cannedClient) RemoveImage(ctx context.Context, name string) error {
	return api.Errorf(api.CodeInvalid, "canned")
}

func (c *cannedClient) Events(ctx context.Context, fn func(api.Event) error) error {
	<-ctx.Done()
	return nil
}
