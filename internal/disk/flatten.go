package disk

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Flatten writes to dst a standalone root disk image: a copy of the image
// base (a reflink or sparse copy, as CloneRoot makes) with the layer disk
// layer's /upper applied the way overlayfs shows it to the guest. New and
// changed files, directories, symlinks, hard links, devices, FIFOs and
// sockets arrive with their mode, owner, mtime and extended attributes;
// whiteouts delete what they hide (a file or a whole tree); an opaque
// directory replaces the base's directory of that name; a merged directory
// takes the upper's attributes. Layers that use overlayfs redirects or
// metacopy (redirect_dir, metacopy: banger's mounts turn them off) are
// refused. It works without mounting (debugfs on the image files) and
// without root; inode flags (chattr) and access times are not carried over.
//
// The result is read back and checked, and made under a temporary name
// renamed to dst at the end; an existing dst is an error. Neither base nor
// layer is changed; the VM must be stopped.
func (m *Manager) Flatten(ctx context.Context, base, layer, dst string) error {
	if err := m.flatten(ctx, base, layer, dst); err != nil {
		return fmt.Errorf("flattening %s over %s into %s: %w", layer, base, dst, err)
	}
	return nil
}

func (m *Manager) flatten(ctx context.Context, base, layer, dst string) error {
	if _, err := os.Lstat(dst); err == nil {
		return fs.ErrExist
	}
	f := &flattening{m: m, base: base, layer: layer, dst: dst}
	defer f.cleanUp()
	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{"list", f.list},        // the layer's upper
		{"extract", f.extract},  // its files' contents and attributes
		{"clone", f.clone},      // the image, to a temporary name
		{"room", f.room},        // grown when the upper needs it
		{"probe", f.probe},      // the image copy, and the plan
		{"make", f.make},        // removals and new entries
		{"attributes", f.attrs}, // and the read-back
		{"check", f.check},      // e2fsck
		{"rename", f.rename},    // into place
	}
	start := time.Now()
	var times []any // slog attributes: milliseconds since the start
	for _, s := range steps {
		if err := s.run(ctx); err != nil {
			return err
		}
		times = append(times, s.name+"_ms", time.Since(start).Milliseconds())
	}
	m.log.Debug("flattened layer", append([]any{"path", dst, "base", base, "layer", layer, "clone", string(f.method),
		"files", len(f.ups), "removed", len(f.plan.Remove), "commands", f.commands, "tidied", f.mk.tidy}, times...)...)
	return nil
}

// flattening is one Flatten in progress: its steps and what they pass on.
type flattening struct {
	m                *Manager
	base, layer, dst string

	ups      []upperFile // the layer's upper, parents first
	data     string      // where the layer's files are copied out to
	tmp      string      // the copy of the image, renamed to dst at the end
	method   Method      // how the image was copied
	plan     flattenPlan
	trees    []node            // the image's directories the plan removes
	mk       makeResult        // the first writing run
	made     map[string]uint32 // new entries' inode numbers
	commands int               // debugfs commands run to write
	done     bool              // renamed: nothing to clean up
}

func (f *flattening) cleanUp() {
	if f.data != "" {
		os.RemoveAll(f.data)
	}
	if f.tmp != "" && !f.done {
		os.Remove(f.tmp)
	}
}

func (f *flattening) list(ctx context.Context) error {
	nodes, err := f.m.walk(ctx, f.layer, []string{layerUpper})
	if err != nil {
		return err
	}
	f.ups, err = upperFiles(nodes)
	return err
}

func (f *flattening) extract(ctx context.Context) error {
	var err error
	f.data, err = f.m.stagingDir(filepath.Dir(f.dst), filepath.Base(f.dst), extractBytes(f.ups))
	if err != nil {
		return err
	}
	s, files := extractScript(f.ups, f.data)
	return f.m.extract(ctx, f.layer, s, files)
}

func (f *flattening) clone(ctx context.Context) error {
	suffix := make([]byte, 6)
	rand.Read(suffix)
	tmp := filepath.Join(filepath.Dir(f.dst), "."+filepath.Base(f.dst)+tempMarker+"flatten-"+hex.EncodeToString(suffix))
	method, err := cloneFile(ctx, f.base, tmp, reflinkOrCopy)
	if err != nil {
		return err
	}
	f.tmp, f.method = tmp, method
	return nil
}

func (f *flattening) room(ctx context.Context) error { return f.m.makeRoom(ctx, f.tmp, f.ups) }

// probe stats every upper path in the image copy (and the names sockets
// are made under), works out the plan and walks the trees it removes.
func (f *flattening) probe(ctx context.Context) error {
	var paths []string
	for _, u := range f.ups {
		paths = append(paths, u.Path)
		if u.St.Mode&modeType == modeSocket {
			paths = append(paths, socketTemp(u))
		}
	}
	var probe script
	for _, p := range paths {
		probe.add("stat", p)
	}
	if probe.err != nil {
		return probe.err
	}
	out, err := f.m.debugfs(ctx, f.tmp, false, probe.cmds)
	if err != nil {
		return fmt.Errorf("inspecting the copy of the image: %w", err)
	}
	inDst := map[string]inodeStat{}
	for i, p := range paths {
		st, ok, err := parseInodeStat(out[i])
		if err != nil {
			return fmt.Errorf("inspecting the copy of the image: %s: %w", p, err)
		}
		if ok {
			inDst[p] = st
		}
	}
	if _, ok := inDst["/"]; !ok {
		return fmt.Errorf("%s has no root directory; is it an ext4 image?", f.base)
	}
	for _, u := range f.ups {
		if _, ok := inDst[socketTemp(u)]; ok && u.St.Mode&modeType == modeSocket {
			return fmt.Errorf("%s exists in the image; Flatten needs that name to make the socket %s", socketTemp(u), u.Path)
		}
	}
	if f.plan, err = planFlatten(f.ups, inDst); err != nil {
		return err
	}
	var roots []string
	for _, r := range f.plan.Remove {
		if r.St.isDir() {
			roots = append(roots, r.Path)
		}
	}
	f.trees, err = f.m.walk(ctx, f.tmp, roots)
	return err
}

// make runs the first writing run and reads the new inodes' numbers.
func (f *flattening) make(ctx context.Context) error {
	var err error
	if f.mk, err = makeScript(f.plan, f.trees, f.data); err != nil {
		return err
	}
	out, err := f.m.debugfs(ctx, f.tmp, true, f.mk.cmds)
	if err == nil {
		f.made, err = madeInodes(f.plan, f.mk, out)
	}
	if err != nil {
		return fmt.Errorf("writing the layer's changes: %w", err)
	}
	f.commands = len(f.mk.cmds)
	return nil
}

// attrs runs the second writing run: attributes and the read-back.
func (f *flattening) attrs(ctx context.Context) error {
	attrs, verify, err := attributeScript(f.plan, f.made, f.data)
	if err != nil {
		return err
	}
	verify = append([]string{"stats -h"}, verify...)
	out, err := f.m.debugfs(ctx, f.tmp, true, append(attrs, verify...))
	if err != nil {
		return fmt.Errorf("setting the attributes of the layer's files: %w", err)
	}
	f.commands += len(attrs)
	// debugfs's write keeps a file's size when the blocks run out, so a
	// full file system is how a short write shows.
	if free, err := ParseFreeBytes([]byte(out[len(attrs)])); err != nil || free == 0 {
		return fmt.Errorf("the copy of the image ran out of space while taking the layer's files (free space: %d bytes, %v); this is a bug in Flatten's estimate, please report it", free, err)
	}
	if err := checkFlattened(f.plan, f.made, out[len(attrs)+1:]); err != nil {
		return fmt.Errorf("reading back the flattened image: %w", err)
	}
	return nil
}

func (f *flattening) check(ctx context.Context) error {
	if f.mk.tidy {
		// debugfs frees an inode without its extended attribute block;
		// e2fsck's preen mode returns such blocks to the free space and
		// fixes the counts.
		if err := f.m.check(ctx, f.tmp); err != nil {
			return err
		}
	}
	if _, err := f.m.tool(ctx, "e2fsck", "-f", "-n", f.tmp); err != nil {
		return fmt.Errorf("checking the flattened image (e2fsck -f -n): %w; this is a bug in Flatten, please report it", err)
	}
	return nil
}

func (f *flattening) rename(context.Context) error {
	if err := renameNoReplace(f.tmp, f.dst); err != nil {
		return err
	}
	f.done = true
	return nil
}

// upperFile is one entry of a layer's /upper, under the path the guest
// sees it at ("/" for /upper itself).
type upperFile struct {
	Path   string
	St     inodeStat
	Opaque bool // a directory marked trusted.overlay.opaque=y
}

// Extended attributes overlayfs keeps for itself in the upper directory.
const overlayXattr = "trusted.overlay."

// upperFiles turns the walk of a layer's /upper into upperFiles, refusing
// the overlayfs features Flatten does not apply.
func upperFiles(nodes []node) ([]upperFile, error) {
	if len(nodes) == 0 || nodes[0].Path != layerUpper || !nodes[0].St.isDir() {
		return nil, errors.New("the layer has no /upper directory; is it a layer disk made by MakeLayer?")
	}
	ups := make([]upperFile, 0, len(nodes))
	for _, n := range nodes {
		u := upperFile{Path: "/" + strings.TrimPrefix(strings.TrimPrefix(n.Path, layerUpper), "/"), St: n.St}
		for _, x := range n.St.Xattrs {
			key, ok := strings.CutPrefix(x.Name, overlayXattr)
			if !ok {
				continue
			}
			switch key {
			case "opaque":
				if x.Value != "y" || !n.St.isDir() {
					return nil, fmt.Errorf("%s in the layer has %s=%q, which Flatten does not know", n.Path, x.Name, x.Value)
				}
				u.Opaque = true
			case "origin", "impure", "uuid", "nlink", "upper", "protattr":
				// Bookkeeping for a mounted overlay; nothing to apply.
			case "redirect", "metacopy":
				return nil, fmt.Errorf("%s in the layer has %s: the layer was mounted with overlayfs redirect_dir or metacopy, which Flatten does not apply; mount it with redirect_dir=off,metacopy=off", n.Path, x.Name)
			default:
				return nil, fmt.Errorf("%s in the layer has %s, an overlayfs attribute Flatten does not know", n.Path, x.Name)
			}
		}
		ups = append(ups, u)
	}
	return ups, nil
}

// copied reports whether an extended attribute goes into the flattened
// image: all but overlayfs's own and ext4's inline data.
func copied(name string) bool {
	return !strings.HasPrefix(name, overlayXattr) && name != "system.data"
}

// made reports whether an upper file stands for a file to make (not a
// whiteout, which only deletes).
func (u upperFile) made() bool { return !u.St.isWhiteout() }

// dataFile is a file extractScript has debugfs write on the host, with the
// size it must have.
type dataFile struct {
	Host string
	Size int64
	What string // for errors
}

// Host file names in the data directory: file contents and slow symlink
// targets by inode, extended attribute values by inode and index.
func contentFile(data string, ino uint32) string {
	return filepath.Join(data, strconv.FormatUint(uint64(ino), 10))
}
func xattrFile(data string, ino uint32, i int) string {
	return filepath.Join(data, "x"+strconv.FormatUint(uint64(ino), 10)+"-"+strconv.Itoa(i))
}

// extractScript renders the debugfs commands that copy out of the layer,
// by inode number, what making the upper files needs: regular files'
// contents, slow symlinks' targets and extended attribute values. Values
// are copied raw (-r), as ext4 stores them: POSIX ACLs are not translated
// to the kernel's format and back, and their size is the one stat lists.
func extractScript(ups []upperFile, data string) (*script, []dataFile) {
	s := &script{}
	s.add("stats", "-h")
	var files []dataFile
	seen := map[uint32]bool{}
	for _, u := range ups {
		if !u.made() || seen[u.St.Ino] {
			continue
		}
		seen[u.St.Ino] = true
		ref := inodeRef(u.St.Ino)
		switch t := u.St.Mode & modeType; {
		case t == modeRegular, t == modeSymlink && !u.St.FastLink:
			h := contentFile(data, u.St.Ino)
			s.add("dump", ref, h)
			files = append(files, dataFile{h, u.St.Size, u.Path})
		}
		for i, x := range u.St.Xattrs {
			if copied(x.Name) {
				h := xattrFile(data, u.St.Ino, i)
				s.add("ea_get", "-r", "-f", h, ref, x.Name)
				files = append(files, dataFile{h, int64(x.Len), u.Path + " " + x.Name})
			}
		}
	}
	return s, files
}

// extractBytes is what extraction copies out of the layer, in bytes.
func extractBytes(ups []upperFile) int64 {
	var n int64
	seen := map[uint32]bool{}
	for _, u := range ups {
		if !u.made() || seen[u.St.Ino] {
			continue
		}
		seen[u.St.Ino] = true
		if t := u.St.Mode & modeType; t == modeRegular || t == modeSymlink && !u.St.FastLink {
			n += u.St.Size
		}
		for _, x := range u.St.Xattrs {
			n += int64(x.Len)
		}
	}
	return n
}

// makeRoom grows the image copy when its free space cannot hold what the
// layer adds (the blocks its new files take in the layer, with headroom),
// so that a VM that installed more than its image had room for still
// flattens; the flattened image is then larger than the base.
func (m *Manager) makeRoom(ctx context.Context, image string, ups []upperFile) error {
	out, err := m.tool(ctx, "debugfs", "-R", "stats -h", image)
	if err != nil {
		return fmt.Errorf("reading the free space of the copy of the image: %w", err)
	}
	free, err := ParseFreeBytes(out)
	if err != nil {
		return fmt.Errorf("reading the free space of the copy of the image: %w", err)
	}
	size, err := ParseFSSize(out)
	if err != nil {
		return fmt.Errorf("reading the size of the copy of the image: %w", err)
	}
	var need int64
	seen := map[uint32]bool{}
	for _, u := range ups {
		if u.made() && !seen[u.St.Ino] {
			seen[u.St.Ino] = true
			need += u.St.Blocks * 512
		}
	}
	want := need + need/8 + 16<<20
	if free >= want {
		return nil
	}
	grown := (size + want - free + 1<<20 - 1) &^ (1<<20 - 1)
	m.log.Info("growing the flattened image to hold the layer", "path", image, "from", size, "to", grown, "layer_bytes", need)
	return m.Grow(ctx, image, grown)
}

// stagingLimit bounds what Flatten copies into the scratch directory.
const stagingLimit = 256 << 20

// stagingDir makes the directory Flatten copies the layer's files into:
// the scratch directory (a memory file system, see Deps.Scratch) when
// they fit well in it, because making thousands of small files there
// costs a fraction of what it costs on a disk file system; else beside
// dst, where there is room for the image anyway.
func (m *Manager) stagingDir(dstDir, name string, total int64) (string, error) {
	if m.scratch != "" && total <= stagingLimit {
		var st unix.Statfs_t
		if err := unix.Statfs(m.scratch, &st); err == nil && int64(st.Bavail)*int64(st.Bsize) >= 4*total {
			if d, err := os.MkdirTemp(m.scratch, "banger-flatten-*"); err == nil {
				return d, nil
			}
		}
	}
	return os.MkdirTemp(dstDir, "."+name+tempMarker+"data-")
}

// extract runs the extraction script against the layer and checks that
// every file arrived whole. The layer must be clean: a journal that still
// holds changes means the guest did not shut down (or still runs).
func (m *Manager) extract(ctx context.Context, layer string, s *script, files []dataFile) error {
	if s.err != nil {
		return s.err
	}
	out, err := m.debugfs(ctx, layer, false, s.cmds)
	if err != nil {
		return fmt.Errorf("copying the layer's files out: %w", err)
	}
	if strings.Contains(out[0], "needs_recovery") {
		return fmt.Errorf("the layer's journal holds changes not yet written: is the VM still running? With it stopped, replay the journal (Repair, or `e2fsck -f -p %s`)", layer)
	}
	var errs []error
	for _, f := range files {
		st, err := os.Stat(f.Host)
		if err == nil && st.Size() != f.Size {
			err = fmt.Errorf("got %d bytes, want %d", st.Size(), f.Size)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("copying %s out of the layer: %w", f.What, err))
		}
	}
	return errors.Join(errs...)
}
