package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"banger/internal/api"
	"banger/internal/bootstrap"
	"banger/internal/config"
	"banger/internal/disk"
	"banger/internal/dns"
	"banger/internal/firecracker"
	"banger/internal/guest"
	"banger/internal/image"
	"banger/internal/imagebuild"
	"banger/internal/nat"
	"banger/internal/network"
	"banger/internal/preflight"
	"banger/internal/system"
	"banger/internal/vm"
)

// HostDeps builds the real host layers from the configuration. The returned
// function releases what they hold (the DNS listeners).
func HostDeps(ctx context.Context, cfg *config.Loaded, log *slog.Logger) (Deps, func(), error) {
	subnet, err := netip.ParsePrefix(cfg.Subnet)
	if err != nil {
		return Deps{}, nil, fmt.Errorf("config subnet: %w", err)
	}
	subnet = subnet.Masked()
	gw := network.Gateway(subnet)
	paths := cfg.Paths

	upstreams, err := dns.HostUpstreams()
	if err != nil {
		log.Warn("reading the host's resolvers; guests can resolve only .vm names", "err", err)
	}
	srv, err := dns.New(dns.Config{Subnet: subnet, Upstreams: upstreams, AllowedAddrs: []netip.Addr{gw}}, log.With("component", "dns"))
	if err != nil {
		return Deps{}, nil, fmt.Errorf("creating the dns server: %w", err)
	}
	if _, err := srv.Listen(cfg.DNSListen, dns.Authoritative); err != nil {
		srv.Close()
		return Deps{}, nil, fmt.Errorf("%w (change dns_listen in %s if the port is taken)", err, paths.ConfigFile)
	}
	records := &dnsRecords{srv: srv, guestAddr: netip.AddrPortFrom(gw, uint16(cfg.DNSGuestPort)).String(), log: log,
		marker: filepath.Join(paths.StateDir, dns.SetupMarker)}
	if hc, err := dns.HostConfigFor(cfg.Bridge, subnet, cfg.DNSListen, cfg.DNSGuestPort); err == nil {
		records.resolver = func(ctx context.Context) error {
			_, err := dns.Setup(ctx, dns.HostDeps{Privileged: system.Privileged(), Plain: system.Plain()}, hc)
			return err
		}
	}

	netMgr, err := network.New(network.Config{Bridge: cfg.Bridge, Subnet: subnet}, network.Deps{Logger: log.With("component", "network")})
	if err != nil {
		srv.Close()
		return Deps{}, nil, err
	}
	fw, err := nat.New(nat.Config{Subnet: subnet, Bridge: cfg.Bridge, DNSPort: cfg.DNSGuestPort}, nat.Deps{Runner: system.Privileged(), Logger: log.With("component", "nat")})
	if err != nil {
		srv.Close()
		return Deps{}, nil, err
	}
	keys := &sshKeys{paths: paths}
	binary, kind := preflight.ResolveVMM(cfg.VMM)
	log.Info("vmm chosen", "binary", binary, "kind", kind, "configured", cfg.VMM)
	vmm := &hostVMM{
		drv:    firecracker.New(firecracker.Deps{Log: log.With("component", "vmm")}),
		binary: binary, kind: kind, sudo: cfg.VMMSudo,
	}
	deps := Deps{
		Log:     log,
		VMM:     vmm,
		Network: &hostNetwork{mgr: netMgr, nat: fw, subnet: subnet, afterBridge: records.listenOnBridge},
		Disks:   &hostDisks{m: disk.New(disk.Deps{Runner: system.Plain(), Log: log.With("component", "disk")}), keys: keys},
		DNS:     records,
		Guest:   &hostGuest{keys: keys},
		Preflight: preflight.New(preflight.Config{VMMBinary: binary, VMMKind: kind, VMMReason: preflight.VMMReason(cfg.VMM, kind),
			DataDir: paths.DataDir, Reflink: disk.ReflinkSupported, Version: vmm.version}),
		Bootstrap: &hostBootstrap{cacheDir: filepath.Join(paths.CacheDir, "bootstrap"), log: log.With("component", "bootstrap")},
	}
	return deps, func() { srv.Close() }, nil
}

// hostVMM drives VMMs through Firecracker's API.
type hostVMM struct {
	drv    *firecracker.Driver
	binary string
	kind   string
	sudo   bool
}

func (h *hostVMM) Start(ctx context.Context, v *vm.VM, img *image.Image, n NetInfo) (vm.Process, error) {
	// Firecracker before bzImage support boots the ELF vmlinux; QEMU
	// boots the bzImage directly.
	kernel := img.Vmlinux
	if h.kind == "qemu" || kernel == "" {
		kernel = img.Kernel
	}
	spec := firecracker.Spec{
		ID: v.ID, Binary: h.binary, Socket: v.Socket, StateDir: v.StateDir,
		Kernel: kernel, Initrd: img.Initrd,
		Boot:      firecracker.Boot{GuestIP: n.IP, Gateway: n.Gateway, PrefixLen: n.PrefixLen, Hostname: v.Name, Nameserver: n.Nameserver},
		RootDrive: v.RootDisk(), WorkDrive: v.WorkDisk(),
		TAP: v.TAP, MAC: v.MAC, VCPUs: v.CPUs, MemoryMiB: v.MemoryMiB, Sudo: h.sudo,
	}
	p, err := h.drv.Start(ctx, spec)
	if err != nil {
		return vm.Process{}, err
	}
	return vm.Process{PID: p.PID, StartTime: p.StartTime}, nil
}

// version asks a VMM binary for its version, for the doctor.
func (h *hostVMM) version(ctx context.Context, binary string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := h.drv.Version(ctx, binary)
	if err != nil {
		return "", err
	}
	return info.String(), nil
}

func fcProcess(v *vm.VM) firecracker.Process {
	return firecracker.Process{ID: v.ID, PID: v.Process.PID, StartTime: v.Process.StartTime, Socket: v.Socket}
}

func (h *hostVMM) Shutdown(ctx context.Context, v *vm.VM, timeout time.Duration) error {
	err := h.drv.Shutdown(ctx, fcProcess(v), timeout)
	if errors.Is(err, firecracker.ErrNotRunning) {
		return nil
	}
	return err
}

func (h *hostVMM) Kill(ctx context.Context, v *vm.VM) error {
	err := h.drv.Kill(ctx, fcProcess(v))
	if errors.Is(err, firecracker.ErrNotRunning) {
		return nil
	}
	return err
}

func (h *hostVMM) Serving() map[string]vm.Process {
	out := map[string]vm.Process{}
	for sock, p := range firecracker.ServingSockets() {
		out[sock] = vm.Process{PID: p.PID, StartTime: p.StartTime}
	}
	return out
}

func (h *hostVMM) Alive(p vm.Process) bool {
	return h.drv.Alive(firecracker.Process{PID: p.PID, StartTime: p.StartTime})
}

// hostNetwork is the bridge, TAPs and NAT.
type hostNetwork struct {
	mgr         *network.Manager
	nat         *nat.NAT
	subnet      netip.Prefix
	afterBridge func() error
}

func (h *hostNetwork) Ensure(ctx context.Context) error {
	if err := h.mgr.EnsureBridge(ctx); err != nil {
		return err
	}
	if err := h.nat.Up(ctx); err != nil {
		return err
	}
	return h.afterBridge()
}

func (h *hostNetwork) Allocate(taken []netip.Addr) (netip.Addr, error) {
	return network.Allocate(h.subnet, taken)
}

func (h *hostNetwork) Info(ip netip.Addr) NetInfo {
	gw := network.Gateway(h.subnet)
	return NetInfo{IP: ip, Gateway: gw, PrefixLen: h.subnet.Bits(), Nameserver: gw}
}

func (h *hostNetwork) TAPName(id string) string { return network.TAPName(id) }

func (h *hostNetwork) MAC(id string) string { return network.GuestMAC(id).String() }

func (h *hostNetwork) CreateTAP(ctx context.Context, v *vm.VM) error {
	owner := -1
	if os.Geteuid() != 0 {
		owner = os.Getuid()
	}
	return h.mgr.CreateTAP(ctx, v.TAP, network.TAPMAC(v.ID), owner)
}

func (h *hostNetwork) DeleteTAP(ctx context.Context, name string) error {
	return h.mgr.DeleteTAP(ctx, name)
}

func (h *hostNetwork) TAPs(ctx context.Context) ([]string, error) {
	taps, err := h.mgr.ListTAPs(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(taps))
	for _, t := range taps {
		names = append(names, t.Name)
	}
	return names, nil
}

// sshKeys holds banger's own SSH key and known_hosts.
type sshKeys struct {
	paths config.Paths
	mu    sync.Mutex
}

func (k *sshKeys) user() (guest.UserKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := os.MkdirAll(k.paths.SSHDir(), 0o700); err != nil {
		return guest.UserKey{}, fmt.Errorf("creating %s: %w", k.paths.SSHDir(), err)
	}
	return guest.EnsureUserKey(k.paths.UserKey())
}

func (k *sshKeys) knownHosts() *guest.KnownHosts { return guest.NewKnownHosts(k.paths.KnownHosts()) }

func hostNames(v *vm.VM) []string { return guest.HostNames(v.Name, "vm", v.IP) }

// hostDisks makes and removes VM disks and writes guest identity.
type hostDisks struct {
	m    *disk.Manager
	keys *sshKeys
}

func (h *hostDisks) CloneRoot(ctx context.Context, img *image.Image, v *vm.VM) (string, error) {
	m, err := h.m.CloneRoot(ctx, img.Rootfs, v.RootDisk())
	return string(m), err
}

func (h *hostDisks) WriteIdentity(ctx context.Context, v *vm.VM, n NetInfo) error {
	user, err := h.keys.user()
	if err != nil {
		return err
	}
	hk, err := guest.NewHostKey("banger host key of " + v.DNSName())
	if err != nil {
		return err
	}
	id := disk.Identity{Hostname: v.Name, Domain: "vm", Address: n.IP, Gateway: n.Gateway,
		AuthorizedKeys: user.AuthorizedKey, HostKeyPrivate: hk.PrivatePEM, HostKeyPublic: hk.AuthorizedKey}
	if err := h.m.WriteIdentity(ctx, v.RootDisk(), id); err != nil {
		return err
	}
	return h.keys.knownHosts().Pin(hostNames(v), hk.Public)
}

func (h *hostDisks) CreateWork(ctx context.Context, v *vm.VM) error {
	return h.m.CreateWork(ctx, v.WorkDisk(), v.DiskBytes)
}

func (h *hostDisks) Grow(ctx context.Context, v *vm.VM, size int64) error {
	return h.m.Grow(ctx, v.WorkDisk(), size)
}

func (h *hostDisks) GrowRoot(ctx context.Context, v *vm.VM, size int64) error {
	return h.m.Grow(ctx, v.RootDisk(), size)
}

func (h *hostDisks) CommitRoot(ctx context.Context, v *vm.VM, dst string, move bool) ([]byte, error) {
	return imagebuild.CommitDisk(ctx, h.m, v.RootDisk(), dst, move)
}

func (h *hostDisks) Remove(ctx context.Context, v *vm.VM) error {
	var errs []error
	for _, p := range []string{v.RootDisk(), v.WorkDisk()} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if _, err := disk.RemoveTemps(v.Dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	errs = append(errs, h.keys.knownHosts().Unpin(hostNames(v)))
	return errors.Join(errs...)
}

// hostGuest waits for guests' SSH servers with the pinned host key.
type hostGuest struct{ keys *sshKeys }

func (h *hostGuest) WaitSSH(ctx context.Context, v *vm.VM) error {
	user, err := h.keys.user()
	if err != nil {
		return err
	}
	cb, err := h.keys.knownHosts().Callback()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	c, err := guest.WaitReady(ctx, v.IP.String(), guest.Config{User: "root", Signer: user.Signer, HostKeyCallback: cb})
	if err != nil {
		return fmt.Errorf("waiting for ssh on %s: %w (the console log shows how far the guest booted)", v.IP, err)
	}
	return c.Close()
}

func (h *hostGuest) Connect(ctx context.Context, v *vm.VM) (GuestConn, error) {
	user, err := h.keys.user()
	if err != nil {
		return nil, err
	}
	cb, err := h.keys.knownHosts().Callback()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	// The builder's connection carries uploads: prefer the cipher guests
	// decrypt fastest under emulation.
	c, err := guest.WaitReady(ctx, v.IP.String(), guest.Config{User: "root", Signer: user.Signer, HostKeyCallback: cb, Ciphers: guest.BulkCiphers()})
	if err != nil {
		return nil, fmt.Errorf("waiting for ssh on %s: %w (the console log shows how far the guest booted)", v.IP, err)
	}
	return c, nil
}

// dnsRecords feeds the DNS server from the VM table and opens the guests'
// listener on the bridge address once the bridge exists.
type dnsRecords struct {
	srv       *dns.Server
	guestAddr string
	log       *slog.Logger
	// marker and resolver re-apply `banger dns setup` (systemd-resolved
	// forgets a link's settings when the link goes away).
	marker   string
	resolver func(context.Context) error
	mu       sync.Mutex
	guestUp  bool
}

// listenOnBridge opens the guests' resolver once the bridge exists and, if
// the user ran `banger dns setup`, routes ~vm to it again in the host's
// resolver. It acts once per daemon.
func (r *dnsRecords) listenOnBridge() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.guestUp {
		return nil
	}
	if _, err := r.srv.Listen(r.guestAddr, dns.Forwarding); err != nil {
		return fmt.Errorf("starting the guests' resolver: %w", err)
	}
	r.guestUp = true
	if _, err := os.Stat(r.marker); err == nil && r.resolver != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.resolver(ctx); err != nil {
			r.log.Warn("re-applying dns setup; NAME.vm may not resolve on the host (run `banger dns status`)", "err", err)
		} else {
			r.log.Info("re-applied dns setup for the bridge")
		}
	}
	return nil
}

func (r *dnsRecords) Set(name string, ip netip.Addr) {
	if err := r.srv.Set(name, ip); err != nil {
		r.log.Warn("setting dns record", "vm", name, "err", err)
	}
}

func (r *dnsRecords) Remove(name string) { r.srv.Remove(name) }

func (r *dnsRecords) Replace(records map[string]netip.Addr) {
	var recs []dns.Record
	for n, ip := range records {
		recs = append(recs, dns.Record{Name: n, IP: ip})
	}
	if err := r.srv.Replace(recs); err != nil {
		r.log.Warn("rebuilding dns records", "err", err)
	}
}

func (r *dnsRecords) Count() int { return r.srv.Count() }

func (r *dnsRecords) Listeners() []api.Listener {
	var out []api.Listener
	for _, l := range r.srv.Listeners() {
		out = append(out, api.Listener{Name: "dns", Network: "udp+tcp", Address: l})
	}
	return out
}

// hostBootstrap builds images with internal/bootstrap.
type hostBootstrap struct {
	cacheDir string
	log      *slog.Logger
}

func (h *hostBootstrap) Bootstrap(ctx context.Context, req api.BootstrapImageRequest, outDir string, progress func(api.Progress)) (image.Image, error) {
	res, err := bootstrap.Build(ctx, bootstrap.Deps{Runner: system.Privileged(), Log: h.log},
		bootstrap.Options{Name: req.Name, Suite: req.Suite, SizeBytes: req.SizeBytes, Packages: req.Packages,
			KernelPackage: req.KernelPackage, Mirror: req.Mirror, OutDir: outDir, CacheDir: h.cacheDir, Refresh: req.Refresh},
		func(p bootstrap.Progress) {
			progress(api.Progress{Step: string(p.Step), Message: p.Message, Seconds: p.Elapsed.Seconds()})
		})
	if err != nil {
		return image.Image{}, err
	}
	return image.Image{
		Kernel: res.Kernel, Vmlinux: res.Vmlinux, Initrd: res.Initrd, Rootfs: res.Rootfs,
		Manifest: res.Manifest, ManifestSHA256: res.ManifestSHA256, KernelVersion: res.KernelVersion,
		SizeBytes: res.RootfsSize, CreatedAt: time.Now().UTC(),
	}, nil
}
