package network

import (
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// FakeLinks is a stateful, in-memory Links for tests. It behaves like the
// kernel where banger relies on it (adding an existing link fails, a TAP
// created without owner reads back as owned by root, deleting a bridge
// detaches its ports, connected routes follow addresses), records every
// mutating call and can be told to fail a given one.
type FakeLinks struct {
	mu    sync.Mutex
	links map[string]*Link
	// ExtraRoutes are returned by Routes besides the connected ones.
	ExtraRoutes []Route
	calls       []string
	fail        map[string]error
}

var _ Links = (*FakeLinks)(nil)

// NewFakeLinks returns a FakeLinks holding the given links (say, a "lo" and
// an "eth0" with an address).
func NewFakeLinks(initial ...Link) *FakeLinks {
	f := &FakeLinks{links: map[string]*Link{}, fail: map[string]error{}}
	for _, l := range initial {
		c := l
		f.links[l.Name] = &c
	}
	return f
}

// FailOn makes the call described by call (as it appears in Calls, e.g.
// "SetMaster bg-a banger0") return err.
func (f *FakeLinks) FailOn(call string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[call] = err
}

// Calls returns the mutating calls made so far, one string each.
func (f *FakeLinks) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// record notes a call and returns the error it was told to fail with.
func (f *FakeLinks) record(format string, args ...any) error {
	c := fmt.Sprintf(format, args...)
	f.calls = append(f.calls, c)
	return f.fail[c]
}

func (f *FakeLinks) lookup(name string) (*Link, error) {
	l, ok := f.links[name]
	if !ok {
		return nil, fmt.Errorf("link %s: %w", name, fs.ErrNotExist)
	}
	return l, nil
}

func clone(l Link) Link {
	l.MAC = slices.Clone(l.MAC)
	l.Addrs = slices.Clone(l.Addrs)
	return l
}

// Link implements Links.
func (f *FakeLinks) Link(name string) (Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, err := f.lookup(name)
	if err != nil {
		return Link{}, err
	}
	return clone(*l), nil
}

// List implements Links.
func (f *FakeLinks) List() ([]Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Link
	for _, l := range f.links {
		out = append(out, clone(*l))
	}
	slices.SortFunc(out, func(a, b Link) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Routes implements Links.
func (f *FakeLinks) Routes() ([]Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := slices.Clone(f.ExtraRoutes)
	for _, l := range f.links {
		if !l.Up {
			continue
		}
		for _, a := range l.Addrs {
			out = append(out, Route{Dst: a.Masked(), Dev: l.Name})
		}
	}
	return out, nil
}

func (f *FakeLinks) add(l Link) error {
	if _, ok := f.links[l.Name]; ok {
		return fmt.Errorf("adding %s: file exists", l.Name)
	}
	f.links[l.Name] = &l
	return nil
}

// AddBridge implements Links.
func (f *FakeLinks) AddBridge(name string, mac net.HardwareAddr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("AddBridge %s %s", name, mac); err != nil {
		return err
	}
	return f.add(Link{Name: name, Kind: "bridge", MAC: slices.Clone(mac), Owner: -1})
}

// AddTAP implements Links.
func (f *FakeLinks) AddTAP(name string, owner int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("AddTAP %s %d", name, owner); err != nil {
		return err
	}
	mac := derivedMAC(0x02, "random:"+name)
	return f.add(Link{Name: name, Kind: "tuntap", MAC: mac, Owner: max(owner, 0)})
}

// Delete implements Links.
func (f *FakeLinks) Delete(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Delete %s", name); err != nil {
		return err
	}
	if _, err := f.lookup(name); err != nil {
		return err
	}
	delete(f.links, name)
	for _, l := range f.links {
		if l.Master == name {
			l.Master = ""
		}
	}
	return nil
}

// SetMAC implements Links.
func (f *FakeLinks) SetMAC(name string, mac net.HardwareAddr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("SetMAC %s %s", name, mac); err != nil {
		return err
	}
	l, err := f.lookup(name)
	if err != nil {
		return err
	}
	l.MAC = slices.Clone(mac)
	return nil
}

// SetMaster implements Links.
func (f *FakeLinks) SetMaster(name, master string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("SetMaster %s %s", name, master); err != nil {
		return err
	}
	l, err := f.lookup(name)
	if err != nil {
		return err
	}
	m, err := f.lookup(master)
	if err != nil {
		return err
	}
	if m.Kind != "bridge" {
		return fmt.Errorf("attaching %s to %s: not a bridge", name, master)
	}
	l.Master = master
	return nil
}

// SetUp implements Links.
func (f *FakeLinks) SetUp(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("SetUp %s", name); err != nil {
		return err
	}
	l, err := f.lookup(name)
	if err != nil {
		return err
	}
	l.Up = true
	return nil
}

// AddAddr implements Links.
func (f *FakeLinks) AddAddr(name string, addr netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("AddAddr %s %s", name, addr); err != nil {
		return err
	}
	l, err := f.lookup(name)
	if err != nil {
		return err
	}
	if !slices.Contains(l.Addrs, addr) {
		l.Addrs = append(l.Addrs, addr)
	}
	return nil
}
