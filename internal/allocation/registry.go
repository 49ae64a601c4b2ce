package allocation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// DefaultDir is where allocations are recorded: root-owned, mode 0755, one
// file per user, mode 0644, readable by the user's bangerd.
const DefaultDir = "/etc/banger/users"

// maxRecord bounds the size of a record file.
const maxRecord = 64 << 10

// ErrNotSetUp says a user has no allocation: `sudo banger system setup` has
// not run for them.
var ErrNotSetUp = errors.New("banger is not set up for this user")

// Registry reads and writes allocation records in a directory. Reading
// checks that root owns the directory and the files and that nobody else
// can write them; writing is for root (`banger system setup`).
type Registry struct {
	// Dir holds USER.json files; DefaultDir when empty.
	Dir string
	// Owner is the uid that must own Dir and its files: 0 (root), or the
	// test's own uid in unit tests.
	Owner int
}

func (r Registry) dir() string {
	if r.Dir == "" {
		return DefaultDir
	}
	return r.Dir
}

// Path returns the record file of user.
func (r Registry) Path(user string) string { return filepath.Join(r.dir(), user+".json") }

// Load reads and checks user's allocation. A missing record is ErrNotSetUp
// (and fs.ErrNotExist) with the fix in the message.
func (r Registry) Load(user string) (Allocation, error) {
	if err := ValidateUser(user); err != nil {
		return Allocation{}, fmt.Errorf("loading allocation: %w", err)
	}
	path := r.Path(user)
	data, err := readTrusted(path, r.Owner, maxRecord)
	if errors.Is(err, fs.ErrNotExist) {
		return Allocation{}, fmt.Errorf("no allocation for %s in %s: run `sudo banger system setup --user %s`: %w (%w)", user, r.dir(), user, ErrNotSetUp, fs.ErrNotExist)
	}
	if err != nil {
		return Allocation{}, fmt.Errorf("loading allocation of %s: %w", user, err)
	}
	a, err := Decode(data)
	if err != nil {
		return Allocation{}, fmt.Errorf("loading allocation of %s from %s: %w", user, path, err)
	}
	if a.User != user {
		return Allocation{}, fmt.Errorf("loading allocation of %s from %s: the record is %s's", user, path, a.User)
	}
	return a, nil
}

// Decode parses and validates a record. Unknown fields are refused.
func Decode(data []byte) (Allocation, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var a Allocation
	if err := dec.Decode(&a); err != nil {
		return Allocation{}, fmt.Errorf("parsing allocation: %w", err)
	}
	if dec.More() {
		return Allocation{}, errors.New("parsing allocation: trailing data")
	}
	if err := a.Validate(); err != nil {
		return Allocation{}, err
	}
	return a, nil
}

// Encode renders a record as written to disk.
func Encode(a Allocation) ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding allocation of %s: %w", a.User, err)
	}
	return append(b, '\n'), nil
}

// List reads every record, sorted by index. A damaged record fails the
// whole list: allocating around it could hand out what it holds.
func (r Registry) List() ([]Allocation, error) {
	if err := CheckTrustedPath(r.dir(), r.Owner); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("listing allocations: %w", err)
	}
	entries, err := os.ReadDir(r.dir())
	if err != nil {
		return nil, fmt.Errorf("listing allocations: %w", err)
	}
	var out []Allocation
	for _, e := range entries {
		user, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		a, err := r.Load(user)
		if err != nil {
			return nil, fmt.Errorf("listing allocations: %w", err)
		}
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Allocation) int { return a.Index - b.Index })
	return out, nil
}

// Save writes a record atomically: the directory is made (mode 0755) when
// missing, the file written beside its final name, synced, made mode 0644
// and renamed into place. Only root can do it outside tests.
func (r Registry) Save(a Allocation) error {
	data, err := Encode(a)
	if err != nil {
		return fmt.Errorf("saving allocation: %w", err)
	}
	if err := r.ensureDir(); err != nil {
		return err
	}
	final := r.Path(a.User)
	tmp, err := os.CreateTemp(r.dir(), "."+a.User+".json.*")
	if err != nil {
		return fmt.Errorf("saving allocation of %s: %w", a.User, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("saving allocation of %s: %w", a.User, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("saving allocation of %s: %w", a.User, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("saving allocation of %s: %w", a.User, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving allocation of %s: %w", a.User, err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fmt.Errorf("saving allocation of %s: %w", a.User, err)
	}
	return nil
}

func (r Registry) ensureDir() error {
	if err := os.MkdirAll(r.dir(), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", r.dir(), err)
	}
	if err := CheckTrustedPath(r.dir(), r.Owner); err != nil {
		return fmt.Errorf("using %s for allocations: %w", r.dir(), err)
	}
	return nil
}

// Remove deletes user's record. A missing record is not an error.
func (r Registry) Remove(user string) error {
	if err := ValidateUser(user); err != nil {
		return fmt.Errorf("removing allocation: %w", err)
	}
	if err := os.Remove(r.Path(user)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing allocation of %s: %w", user, err)
	}
	return nil
}

// Lock takes an exclusive lock on the registry (a file only root can open,
// Dir/.lock), so that two setups never hand out the same slot. The
// returned function releases it.
func (r Registry) Lock() (func(), error) {
	if err := r.ensureDir(); err != nil {
		return nil, err
	}
	path := filepath.Join(r.dir(), ".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking allocations: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking allocations %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// ForUser returns the allocation of a bangerd running as uid, named user:
// Default for root, else the user's record, which must carry that uid.
func (r Registry) ForUser(user string, uid int) (Allocation, error) {
	if uid == 0 {
		return Default(), nil
	}
	a, err := r.Load(user)
	if err != nil {
		return Allocation{}, err
	}
	if a.UID != uid {
		return Allocation{}, fmt.Errorf("allocation of %s records uid %d, not %d: run `sudo banger system setup --user %s` again", user, a.UID, uid, user)
	}
	return a, nil
}

// ZoneLabels returns the labels the users' zones add under "vm." ("alice"
// for alice.vm.). On the host, the resolver routes NAME.alice.vm and
// alice.vm itself to alice's daemon, so bangerd as root refuses a VM named
// like one of these: its NAME.vm would be shadowed by that user's zone.
func (r Registry) ZoneLabels() ([]string, error) {
	all, err := r.List()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range all {
		if l := a.ZoneLabel(); l != "" {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out, nil
}
