package preflight

// Op is an operation whose host prerequisites are checked before it runs.
type Op string

// The checked operations. Each names the daemon layers and the host checks
// it needs; an operation that does several things checks each of them (a
// create that grows its root disk checks CreateVM and GrowDisk).
const (
	CreateVM       Op = "vm create"
	StartVM        Op = "vm start"
	GrowDisk       Op = "disk growth"
	CommitImage    Op = "image commit"
	BuildImage     Op = "image build"
	BootstrapImage Op = "image bootstrap"
)

// Ops lists every checked operation.
func Ops() []Op {
	return []Op{CreateVM, StartVM, GrowDisk, CommitImage, BuildImage, BootstrapImage}
}

// Layer is one of the daemon's host layers an operation needs.
type Layer string

// The daemon's host layers.
const (
	Disks     Layer = "disks"
	Network   Layer = "network"
	VMM       Layer = "vmm"
	Guest     Layer = "guest"
	Bootstrap Layer = "bootstrap"
)

// needs is what each operation needs: the daemon layers and the host
// checks. The doctor runs every check once.
var needs = map[Op]struct {
	layers []Layer
	checks []check
}{
	CreateVM:       {[]Layer{Disks}, []check{mkfs, debugfs}},
	StartVM:        {[]Layer{Disks, Network, VMM}, []check{vmm, tun, iptables, netAdmin}},
	GrowDisk:       {[]Layer{Disks}, []check{e2fsck, resize2fs}},
	CommitImage:    {[]Layer{Disks}, []check{e2fsck, debugfs}},
	BuildImage:     {[]Layer{Disks, Network, VMM, Guest}, []check{mkfs, debugfs, vmm, tun, iptables, netAdmin, e2fsck}},
	BootstrapImage: {[]Layer{Bootstrap}, []check{mmdebstrap, mkfs, debugfs, userns}},
}

// Layers lists the daemon layers op needs.
func (op Op) Layers() []Layer { return needs[op].layers }

// neededBy names the operations that need the check called name.
func neededBy(name string) []string {
	var out []string
	for _, op := range Ops() {
		for _, ck := range needs[op].checks {
			if ck.name == name {
				out = append(out, string(op))
				break
			}
		}
	}
	return out
}
