package api

import "time"

// Version is the API version prefix of every route.
const Version = "v1"

// VM is a virtual machine as the daemon reports it.
type VM struct {
	ID         string  `json:"id"`
	Name       string  `json:"name"`
	State      string  `json:"state"`
	Reason     string  `json:"reason,omitempty"`
	Image      string  `json:"image"`
	CPUs       int     `json:"cpus"`
	MemoryMiB  int     `json:"memory_mib"`
	DiskBytes  int64   `json:"disk_bytes"`
	IP         string  `json:"ip,omitempty"`
	MAC        string  `json:"mac,omitempty"`
	TAP        string  `json:"tap,omitempty"`
	DNSName    string  `json:"dns_name"`
	PID        int     `json:"pid,omitempty"`
	CPUPercent float64 `json:"cpu_percent"`
	RSSBytes   int64   `json:"rss_bytes"`
	// RootDisk holds what the VM wrote to its root: its own copy of the
	// image's root (layout "clone") or its layer over the image's shared
	// root (layout "layer").
	RootDisk string `json:"root_disk"`
	Layout   string `json:"layout,omitempty"`
	WorkDisk string `json:"work_disk"`
	RootUsed int64  `json:"root_disk_used_bytes"`
	WorkUsed int64  `json:"work_disk_used_bytes"`
	// SavedBytes is the disk space of a suspended VM's saved state and
	// memory (SavedMemory is the memory file's path); zero otherwise.
	SavedBytes  int64  `json:"saved_state_bytes,omitempty"`
	SavedMemory string `json:"saved_memory,omitempty"`
	ConsoleLog  string `json:"console_log"`
	VMMLog      string `json:"vmm_log"`
	Hidden      bool   `json:"hidden,omitempty"`
	// Forwards are the VM's port forwards, as ADDR:HOSTPORT:GUESTPORT/PROTO;
	// they run while the VM does.
	Forwards   []string  `json:"forwards,omitempty"`
	StaleImage bool      `json:"stale_image,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	// Boot is the timeline of the VM's last boot, when it has booted.
	Boot *BootTimeline `json:"boot,omitempty"`
}

// BootTimeline is how a VM's last boot went, cut into phases, from the
// daemon's clock and the guest console's timestamps.
type BootTimeline struct {
	// VMMStartedAt is when the daemon started the VMM.
	VMMStartedAt time.Time `json:"vmm_started_at"`
	// TotalMS is VMM start to SSH answered; 0 until the daemon reached SSH.
	TotalMS int64 `json:"total_ms,omitempty"`
	// Origin is what the phases' start_ms count from: "vmm" (the VMM's
	// start) when the guest clock could be placed on the daemon's, else
	// "kernel" (the guest kernel's start).
	Origin string      `json:"origin"`
	Phases []BootPhase `json:"phases"`
}

// BootPhase is one interval of a boot, named after the mark it starts at:
// vmm (VMM start → kernel start), kernel (→ /init running), initramfs (→
// switch_root), switch-root (→ systemd running), systemd (→ sshd
// accepting), sshd (→ SSH answered). A mark the console lacks merges its
// neighbours.
type BootPhase struct {
	Name       string `json:"name"`
	From       string `json:"from"`
	To         string `json:"to"`
	StartMS    int64  `json:"start_ms"`
	DurationMS int64  `json:"duration_ms"`
	// Clock is "guest" (console timestamps), "host" (the daemon's clock)
	// or "estimate" (the host's clock when SSH's port opened less the
	// guest's when sshd said it accepts connections).
	Clock string `json:"clock"`
}

// Image is a guest image as the daemon reports it.
type Image struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	Source         string    `json:"source"`
	Kernel         string    `json:"kernel"`
	Vmlinux        string    `json:"vmlinux,omitempty"`
	Initrd         string    `json:"initrd"`
	Rootfs         string    `json:"rootfs"`
	Manifest       string    `json:"manifest,omitempty"`
	ManifestSHA256 string    `json:"manifest_sha256,omitempty"`
	PackagesSHA256 string    `json:"packages_sha256,omitempty"`
	KernelVersion  string    `json:"kernel_version,omitempty"`
	SizeBytes      int64     `json:"size_bytes"`
	AllocatedBytes int64     `json:"allocated_bytes"`
	BuildLog       string    `json:"build_log,omitempty"`
	Stale          bool      `json:"stale,omitempty"`
	VMs            int       `json:"vms"`
	CreatedAt      time.Time `json:"created_at"`
}

// CreateVMRequest asks for a new VM. Zero values take the configured defaults.
type CreateVMRequest struct {
	Name      string `json:"name"`
	Image     string `json:"image,omitempty"`
	CPUs      int    `json:"cpus,omitempty"`
	MemoryMiB int    `json:"memory_mib,omitempty"`
	DiskBytes int64  `json:"disk_bytes,omitempty"`
	// NoStart creates the VM stopped.
	NoStart bool `json:"no_start,omitempty"`
	// WaitSSH waits until the guest's SSH server answers.
	WaitSSH bool `json:"wait_ssh,omitempty"`
	// RootBytes grows the root disk (file and filesystem) to this size
	// before the first boot; zero keeps the image's size.
	RootBytes int64 `json:"root_bytes,omitempty"`
	// Hidden marks the image builder's temporary VMs, left out of listings
	// unless asked for. Only the daemon sets it; requests cannot.
	Hidden bool `json:"-"`
}

// WarmImageRequest is the shape of the template `image warm` makes; zero
// fields take the configured defaults, as vm create does.
type WarmImageRequest struct {
	CPUs      int   `json:"cpus,omitempty"`
	MemoryMiB int   `json:"memory_mib,omitempty"`
	DiskBytes int64 `json:"disk_bytes,omitempty"`
}

// CloneVMRequest names the VM a clone makes.
type CloneVMRequest struct {
	Name string `json:"name"`
}

// StopVMRequest tunes a stop.
type StopVMRequest struct {
	// TimeoutSeconds bounds the graceful shutdown before SIGTERM/SIGKILL;
	// zero takes the configured default.
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
}

// RemoveVMRequest tunes a removal.
type RemoveVMRequest struct {
	// Force removes a running VM (killing it) instead of refusing.
	Force bool `json:"force,omitempty"`
}

// ResizeVMRequest grows a VM's work disk (stopped or running), its root
// (stopped), or both; a zero size leaves that disk as it is.
type ResizeVMRequest struct {
	DiskBytes int64 `json:"disk_bytes,omitempty"`
	RootBytes int64 `json:"root_bytes,omitempty"`
}

// Listener is one network service of the daemon, such as its DNS server.
type Listener struct {
	Name    string `json:"name"`
	Network string `json:"network"`
	Address string `json:"address"`
	Detail  string `json:"detail,omitempty"`
}

// Status describes the running daemon.
type Status struct {
	PID           int            `json:"pid"`
	Version       string         `json:"version"`
	BuildID       string         `json:"build_id"`
	Executable    string         `json:"executable"`
	Socket        string         `json:"socket"`
	Database      string         `json:"database"`
	LogFile       string         `json:"log_file"`
	LogLevel      string         `json:"log_level"`
	StartedAt     time.Time      `json:"started_at"`
	UptimeSeconds float64        `json:"uptime_seconds"`
	VMs           map[string]int `json:"vms"`
	Images        int            `json:"images"`
	Listeners     []Listener     `json:"listeners"`
	DNSRecords    int            `json:"dns_records"`
	Ready         bool           `json:"ready"`
	// Allocation describes the daemon's share of the host's networking
	// ("bridge banger1, subnet 10.213.1.0/24, zone alice.vm."), empty when
	// its user was not set up when it started.
	Allocation string `json:"allocation,omitempty"`
	// Runtime names the runtime bundle in use (its VMM, kernel and root
	// file system), empty when there is none.
	Runtime string `json:"runtime,omitempty"`
	// Service is the systemd unit that runs the daemon
	// ("bangerd.service"), empty when the CLI or a user started it.
	Service  string   `json:"service,omitempty"`
	Problems []string `json:"problems,omitempty"`
}

// Event types streamed by GET /v1/events.
const (
	EventVMCreated    = "vm.created"
	EventVMStarted    = "vm.started"
	EventVMStopped    = "vm.stopped"
	EventVMError      = "vm.error"
	EventVMRemoved    = "vm.removed"
	EventVMUpdated    = "vm.updated"
	EventVMPaused     = "vm.paused"
	EventVMSuspended  = "vm.suspended"
	EventImageAdded   = "image.added"
	EventImageRemoved = "image.removed"
	EventImageBuild   = "image.build"
)

// Event is a state change, streamed as one JSON object per line.
type Event struct {
	Type  string    `json:"type"`
	Time  time.Time `json:"time"`
	Name  string    `json:"name"`
	VM    *VM       `json:"vm,omitempty"`
	Image *Image    `json:"image,omitempty"`
	// Progress carries build progress for image.build events.
	Progress *Progress `json:"progress,omitempty"`
}

// Progress is one step of a long operation, streamed as NDJSON.
type Progress struct {
	Step    string `json:"step"`
	Message string `json:"message,omitempty"`
	// Done and Total describe measurable progress (bytes, items); zero Total
	// means indeterminate.
	Done  int64 `json:"done,omitempty"`
	Total int64 `json:"total,omitempty"`
	// Finished marks the end of the step.
	Finished bool    `json:"finished,omitempty"`
	Seconds  float64 `json:"seconds,omitempty"`
}

// StepWait is the progress step of an operation waiting for another that
// holds the same VM.
const StepWait = "wait"

// StreamLine is one line of an NDJSON operation stream: exactly one of
// Progress, Result or Error is set. The last line carries Result or Error.
type StreamLine struct {
	Progress *Progress `json:"progress,omitempty"`
	VM       *VM       `json:"vm,omitempty"`
	Image    *Image    `json:"image,omitempty"`
	Warnings []string  `json:"warnings,omitempty"`
	Error    *Error    `json:"error,omitempty"`
	Done     bool      `json:"done,omitempty"`
}

// BootstrapImageRequest asks the daemon to build a base image from Debian
// packages. Zero values take the bootstrap defaults.
type BootstrapImageRequest struct {
	Name          string   `json:"name"`
	Suite         string   `json:"suite,omitempty"`
	SizeBytes     int64    `json:"size_bytes,omitempty"`
	Packages      []string `json:"packages,omitempty"`
	KernelPackage string   `json:"kernel_package,omitempty"`
	// Kernel is "debian" (KernelPackage's kernel, the default) or
	// "microvm" (built from linux-source, everything built in).
	Kernel  string `json:"kernel,omitempty"`
	Mirror  string `json:"mirror,omitempty"`
	Refresh bool   `json:"refresh,omitempty"`
}

// BuildImageRequest asks the daemon to build an image by booting a
// temporary VM from Base and provisioning it over SSH.
type BuildImageRequest struct {
	Name string `json:"name"`
	// Base is the image to start from; empty takes the configured default.
	Base string `json:"base,omitempty"`
	// SizeBytes grows the root file system; zero keeps the base's size.
	SizeBytes int64 `json:"size_bytes,omitempty"`
	// PackagesFile is the package file's content; empty with NoPackages
	// unset takes the repository's default manifest.
	PackagesFile string `json:"packages_file,omitempty"`
	// PackagesPath is the host path the package file was read from: it is
	// recorded for staleness and resolves relative .deb entries.
	PackagesPath string `json:"packages_path,omitempty"`
	// NoPackages installs no packages at all.
	NoPackages bool `json:"no_packages,omitempty"`
	// Copies are host paths (absolute) and guest destinations, uploaded in
	// order before the packages are installed.
	Copies []BuildCopy `json:"copies,omitempty"`
	// Scripts run in order after the packages, with output streamed.
	Scripts []BuildScript `json:"scripts,omitempty"`
	// Modules installs the kernel modules of the image's kernel.
	Modules bool `json:"modules,omitempty"`
	// CPUs and MemoryMiB size the temporary VM; zero takes the defaults.
	CPUs      int `json:"cpus,omitempty"`
	MemoryMiB int `json:"memory_mib,omitempty"`
	// AptProxy is the HTTP proxy the temporary VM's apt uses
	// (http[s]://HOST[:PORT]); empty for none. The image does not keep it.
	AptProxy string `json:"apt_proxy,omitempty"`
}

// BuildCopy is one file or directory uploaded into a build.
type BuildCopy struct {
	Src  string `json:"src"`
	Dest string `json:"dest"`
}

// BuildScript is one script run inside a build.
type BuildScript struct {
	Name    string `json:"name"`
	Content string `json:"content"`
}

// CommitImageRequest turns a stopped VM's root disk into an image.
type CommitImageRequest struct {
	VM   string `json:"vm"`
	Name string `json:"name"`
}

// Check statuses: a failed check blocks the operations that need it; a
// warning does not.
const (
	CheckOK   = "ok"
	CheckWarn = "warn"
	CheckFail = "fail"
)

// Check is one line of `banger doctor`: a host prerequisite or fact as the
// daemon sees it.
type Check struct {
	Name   string `json:"name"`
	Status string `json:"status"` // CheckOK, CheckWarn or CheckFail
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// DNSSetupRequest turns the host resolver integration on or off.
type DNSSetupRequest struct {
	// Remove undoes the setup instead.
	Remove bool `json:"remove,omitempty"`
}

// DNSSetup says what `banger dns setup` (or teardown) did.
type DNSSetup struct {
	// Method is the host resolver found: resolved, networkmanager, dnsmasq.
	Method string `json:"method"`
	// Ran lists the commands run (systemd-resolved).
	Ran [][]string `json:"ran,omitempty"`
	// Manual is the file for the user to install (or delete) by hand.
	Manual *DNSSnippet `json:"manual,omitempty"`
	// Deferred says the setup is recorded and bangerd applies it when it
	// creates the bridge (with the first VM).
	Deferred bool   `json:"deferred,omitempty"`
	Link     string `json:"link,omitempty"`
	Gateway  string `json:"gateway,omitempty"`
}

// DNSSnippet is resolver configuration to install by hand.
type DNSSnippet struct {
	Path    string     `json:"path"`
	Content string     `json:"content"`
	Apply   [][]string `json:"apply,omitempty"`
}

// WaitVMRequest bounds a wait for a VM's guest.
type WaitVMRequest struct {
	// TimeoutSeconds bounds the wait; zero takes the daemon's default (3 min).
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
}

// ForwardsRequest adds and removes a VM's port forwards, each written
// `[ADDR:]HOSTPORT:GUESTPORT[/tcp|/udp]`.
type ForwardsRequest struct {
	Add    []string `json:"add,omitempty"`
	Remove []string `json:"remove,omitempty"`
}

// Finding is one difference between the host and banger's database, as
// `banger system check` reports it.
type Finding struct {
	// Kind is what the resource is: "tap", "vm file", "socket", "vmm
	// process", "image stage", "image directory", "disk template temp",
	// "root disk", "work disk", "image file".
	Kind string `json:"kind"`
	// Name is the device, path or pid (for a leftover), or the VM or
	// image (for something missing).
	Name string `json:"name"`
	// Problem is FindingNoOwner or FindingMissing.
	Problem string `json:"problem"`
	Detail  string `json:"detail,omitempty"`
}

// The problems of a Finding.
const (
	// FindingNoOwner is something banger made that no row owns.
	FindingNoOwner = "no owner"
	// FindingMissing is something a row expects that is not on the host.
	FindingMissing = "missing"
)

// CheckReport is the answer of GET and POST /v1/system/check.
type CheckReport struct {
	// Findings are what is off now (after the fix, for POST).
	Findings []Finding `json:"findings"`
	// Fixed are what POST repaired.
	Fixed []Finding `json:"fixed,omitempty"`
	// Error says what POST could not repair, and why.
	Error string `json:"error,omitempty"`
}

// PruneRequest says what `banger image prune` removes.
type PruneRequest struct {
	// DryRun lists what would be removed and removes nothing.
	DryRun bool `json:"dry_run,omitempty"`
	// LogDays removes build logs last written more than this many days
	// ago; at least 1.
	LogDays int `json:"log_days"`
}

// Kinds of PruneItem.
const (
	PruneCache    = "cache"    // a bootstrap cache entry or package download
	PruneTemplate = "template" // a blank disk template
	PruneLog      = "log"      // an old build log
	PruneWarm     = "warm"     // a warm template VM whose image changed or went
)

// PruneItem is one file or directory prune removed (or would remove).
type PruneItem struct {
	Kind  string `json:"kind"`
	Path  string `json:"path"`
	Bytes int64  `json:"bytes"`
	Why   string `json:"why"`
}

// PruneResult is what prune removed (or, in a dry run, would remove).
type PruneResult struct {
	DryRun bool        `json:"dry_run,omitempty"`
	Items  []PruneItem `json:"items"`
	Bytes  int64       `json:"bytes"`
	// Skipped says what was left alone and why (a bootstrap was running).
	Skipped []string `json:"skipped,omitempty"`
}
