package dns

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	mdns "github.com/miekg/dns"
)

// Record is one name served in the zone: Name is relative to the zone
// ("dev" becomes "dev.vm."), IP is the VM's address.
type Record struct {
	Name string
	IP   netip.Addr
}

// ErrInvalidName is returned for names that cannot be served in the zone.
var ErrInvalidName = errors.New("invalid DNS name")

// records is the in-memory record store. Readers load an immutable snapshot
// without locking; writers serialise on mu, build a new snapshot and publish
// it before returning, so the next query sees the change.
type records struct {
	zone string // canonical, e.g. "vm."

	mu     sync.Mutex // serialises writers
	byName map[string]netip.Addr
	serial uint32
	cur    atomic.Pointer[snapshot]
}

// snapshot is an immutable view of the zone's records.
type snapshot struct {
	// byName maps canonical FQDNs ("dev.vm.") to addresses.
	byName map[string]netip.Addr
	// byAddr maps addresses to the canonical FQDN that answers the PTR
	// query; with several names on one address the smallest name wins.
	byAddr map[netip.Addr]string
	// ents holds empty non-terminals: names that own no record but have
	// records beneath them ("b.vm." when "a.b.vm." exists).
	ents   map[string]struct{}
	serial uint32
}

func newRecords(zone string, serial uint32) *records {
	r := &records{zone: zone, byName: map[string]netip.Addr{}, serial: serial}
	r.publish()
	return r
}

func (r *records) load() *snapshot { return r.cur.Load() }

// fqdn validates a zone-relative name and returns its canonical FQDN.
func (r *records) fqdn(name string) (string, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	if n == "" || strings.HasSuffix(n, ".") || strings.HasPrefix(n, ".") || strings.Contains(n, "..") {
		return "", fmt.Errorf("%w: %q (want a name relative to %s, like \"dev\")", ErrInvalidName, name, r.zone)
	}
	full := n + "." + r.zone
	if _, ok := mdns.IsDomainName(full); !ok || len(full) > 254 {
		return "", fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	for _, l := range mdns.SplitDomainName(n) {
		if len(l) > 63 {
			return "", fmt.Errorf("%w: label %q is longer than 63 bytes", ErrInvalidName, l)
		}
		for _, c := range []byte(l) {
			if c <= ' ' || c == '\\' || c >= 0x7f {
				return "", fmt.Errorf("%w: %q contains %q", ErrInvalidName, name, c)
			}
		}
	}
	return full, nil
}

func checkAddr(name string, ip netip.Addr) (netip.Addr, error) {
	if !ip.IsValid() || ip.IsUnspecified() {
		return netip.Addr{}, fmt.Errorf("registering %s: invalid address %v", name, ip)
	}
	return ip.Unmap(), nil
}

func (r *records) set(name string, ip netip.Addr) error {
	full, err := r.fqdn(name)
	if err != nil {
		return fmt.Errorf("registering %s: %w", name, err)
	}
	if ip, err = checkAddr(name, ip); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.byName[full]; ok && old == ip {
		return nil
	}
	r.byName[full] = ip
	r.publish()
	return nil
}

func (r *records) remove(name string) bool {
	full, err := r.fqdn(name)
	if err != nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byName[full]; !ok {
		return false
	}
	delete(r.byName, full)
	r.publish()
	return true
}

func (r *records) replace(recs []Record) error {
	next := make(map[string]netip.Addr, len(recs))
	var errs []error
	for _, rec := range recs {
		full, err := r.fqdn(rec.Name)
		if err != nil {
			errs = append(errs, fmt.Errorf("registering %s: %w", rec.Name, err))
			continue
		}
		ip, err := checkAddr(rec.Name, rec.IP)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		next[full] = ip
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("replacing DNS records (none changed): %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byName = next
	r.publish()
	return nil
}

// publish builds a snapshot from byName and makes it current. The caller
// holds mu (or is the constructor).
func (r *records) publish() {
	r.serial++
	s := &snapshot{
		byName: make(map[string]netip.Addr, len(r.byName)),
		byAddr: make(map[netip.Addr]string, len(r.byName)),
		ents:   map[string]struct{}{},
		serial: r.serial,
	}
	for name, ip := range r.byName {
		s.byName[name] = ip
		if cur, ok := s.byAddr[ip]; !ok || name < cur {
			s.byAddr[ip] = name
		}
		// Every proper ancestor between the name and the zone apex is an
		// empty non-terminal unless it owns a record itself.
		for rest := name; ; {
			_, after, ok := strings.Cut(rest, ".")
			if !ok || after == r.zone || len(after) <= len(r.zone) {
				break
			}
			s.ents[after] = struct{}{}
			rest = after
		}
	}
	for name := range s.byName {
		delete(s.ents, name)
	}
	r.cur.Store(s)
}
