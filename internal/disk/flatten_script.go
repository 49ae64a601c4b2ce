package disk

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Applying a layer's upper to the image copy runs debugfs twice. The first
// run removes and makes directory entries, directory by directory: it
// changes into each directory (by inode number where the image has it)
// and names entries relative to it, because libext2fs looks names up by
// scanning directories, so a path costs a scan per component; after each
// directory it lists it, which tells the new inodes' numbers. The second
// run sets every attribute by inode number and reads everything back.

// flattenPlan is what applying a layer's upper does to the copy of the
// image, worked out from the upper and what the copy holds there.
type flattenPlan struct {
	// Remove lists the image's entries that go before anything is made:
	// whole trees for directories.
	Remove []node
	// Make lists the upper files made anew, parents first.
	Make []upperFile
	// Merge lists the upper directories whose image directory stays, its
	// entries merged; they take the upper's attributes.
	Merge []upperFile
	// Dst has the image's inodes at the merged directories.
	Dst map[string]inodeStat
	// Gone lists the paths that must not exist afterwards.
	Gone []string
}

// planFlatten works out the plan. ups are in walk order (parents first);
// dst maps the upper paths to what the image copy holds there.
func planFlatten(ups []upperFile, dst map[string]inodeStat) (flattenPlan, error) {
	p := flattenPlan{Dst: map[string]inodeStat{}}
	fresh := map[string]bool{} // directories made anew: nothing of the image below
	for _, u := range ups {
		if u.Path == "/" {
			d, ok := dst["/"]
			if !ok || !d.isDir() {
				return flattenPlan{}, errors.New("the image has no root directory")
			}
			p.Merge = append(p.Merge, u)
			p.Dst["/"] = d
			continue
		}
		if fresh[path.Dir(u.Path)] {
			if u.made() {
				p.Make = append(p.Make, u)
				fresh[u.Path] = u.St.isDir()
			}
			continue
		}
		d, exists := dst[u.Path]
		switch {
		case !u.made():
			if exists {
				p.Remove = append(p.Remove, node{u.Path, d})
			}
			p.Gone = append(p.Gone, u.Path)
		case u.St.isDir() && !u.Opaque && exists && d.isDir():
			p.Merge = append(p.Merge, u)
			p.Dst[u.Path] = d
		default:
			if exists {
				p.Remove = append(p.Remove, node{u.Path, d})
			}
			p.Make = append(p.Make, u)
			fresh[u.Path] = u.St.isDir()
		}
	}
	return p, nil
}

// socketTemp is the name a socket is first made under: debugfs's mknod
// makes no sockets, so Flatten makes a FIFO, turns it into a socket and
// links it under its name, which gives the directory entry the right type.
func socketTemp(u upperFile) string {
	return joinPath(path.Dir(u.Path), ".banger-socket-"+strconv.FormatUint(uint64(u.St.Ino), 10))
}

// newEncodeDev is the kernel's new_encode_dev: how ext4 stores a device
// number that does not fit in 8+8 bits.
func newEncodeDev(major, minor uint32) uint32 {
	return minor&0xff | major<<8 | (minor&^0xff)<<12
}

// grouped returns the directories of files in first-appearance order and
// the files of each.
func grouped[T any](items []T, pathOf func(T) string) ([]string, map[string][]T) {
	var dirs []string
	by := map[string][]T{}
	for _, it := range items {
		d := path.Dir(pathOf(it))
		if _, ok := by[d]; !ok {
			dirs = append(dirs, d)
		}
		by[d] = append(by[d], it)
	}
	return dirs, by
}

// makeResult is the first run's script and where its listings are.
type makeResult struct {
	cmds []string
	// lists maps each directory that got new entries to the index of the
	// `ls -p` that follows them.
	lists map[string]int
	// tidy reports that freed inodes had extended attribute blocks, which
	// debugfs does not free.
	tidy bool
}

// makeScript renders the first run: removals, then new entries.
func makeScript(p flattenPlan, trees []node, data string) (makeResult, error) {
	var s script
	res := makeResult{lists: map[string]int{}}
	cwd := "/"
	cd := func(dir string) {
		if dir == cwd {
			return
		}
		if d, ok := p.Dst[dir]; ok {
			s.add("cd", inodeRef(d.Ino))
		} else {
			s.add("cd", dir)
		}
		cwd = dir
	}

	// Removals. Top entries are unlinked from their directories; what is
	// below a removed directory goes with it. Each inode is then freed, or
	// keeps the links it has elsewhere.
	treeOf := map[string][]node{}
	for _, n := range trees {
		for _, r := range p.Remove {
			if n.Path == r.Path || strings.HasPrefix(n.Path, r.Path+"/") {
				treeOf[r.Path] = append(treeOf[r.Path], n)
				break
			}
		}
	}
	unlinked := map[uint32]uint32{}
	var files, dirs []inodeStat
	unlink := func(st inodeStat) {
		if st.isDir() {
			dirs = append(dirs, st)
			return
		}
		if unlinked[st.Ino] == 0 {
			files = append(files, st)
		}
		unlinked[st.Ino]++
	}
	parents, byParent := grouped(p.Remove, func(n node) string { return n.Path })
	for _, parent := range parents {
		pst, ok := p.Dst[parent]
		if !ok {
			return makeResult{}, fmt.Errorf("%s is not a directory the image and the layer share", parent)
		}
		cd(parent)
		subdirs := uint32(0)
		for _, r := range byParent[parent] {
			s.add("unlink", path.Base(r.Path))
			if !r.St.isDir() {
				unlink(r.St)
				continue
			}
			subdirs++
			t := treeOf[r.Path]
			if len(t) == 0 || t[0].Path != r.Path {
				return makeResult{}, fmt.Errorf("%s vanished from the copy of the image while flattening", r.Path)
			}
			for _, n := range t {
				unlink(n.St)
			}
		}
		// A subdirectory's ".." is a link to its parent (a count of 1
		// means more links than ext4 counts: leave it).
		if subdirs > 0 && pst.Links > 1 {
			s.add("sif", inodeRef(pst.Ino), "links_count", strconv.FormatUint(uint64(pst.Links-subdirs), 10))
		}
	}
	free := func(st inodeStat) {
		s.add("sif", inodeRef(st.Ino), "links_count", "0")
		s.add("kill_file", inodeRef(st.Ino))
		res.tidy = res.tidy || st.FileACL != 0
	}
	for _, st := range files {
		if n := unlinked[st.Ino]; n < st.Links {
			s.add("sif", inodeRef(st.Ino), "links_count", strconv.FormatUint(uint64(st.Links-n), 10))
		} else {
			free(st)
		}
	}
	for _, st := range dirs {
		free(st)
	}

	// New entries, directory by directory, parents first; more names of
	// a file are hard links to the first made.
	first := map[uint32]string{}
	order, byDir := grouped(p.Make, func(u upperFile) string { return u.Path })
	for _, dir := range order {
		cd(dir)
		for _, u := range byDir[dir] {
			name := path.Base(u.Path)
			if f, ok := first[u.St.Ino]; ok && !u.St.isDir() {
				s.add("ln", f, name)
				continue
			}
			switch u.St.Mode & modeType {
			case modeDir:
				s.add("mkdir", name)
			case modeRegular:
				s.add("write", contentFile(data, u.St.Ino), name)
			case modeSymlink:
				target := u.St.Target
				if !u.St.FastLink {
					b, err := os.ReadFile(contentFile(data, u.St.Ino))
					if err != nil {
						return makeResult{}, fmt.Errorf("reading the target of %s: %w", u.Path, err)
					}
					target = string(b)
				}
				s.add("symlink", name, target)
			case modeFIFO:
				s.add("mknod", name, "p")
			case modeChar, modeBlock:
				kind := "c"
				if u.St.Mode&modeType == modeBlock {
					kind = "b"
				}
				if u.St.Major < 256 && u.St.Minor < 256 {
					s.add("mknod", name, kind, strconv.FormatUint(uint64(u.St.Major), 10), strconv.FormatUint(uint64(u.St.Minor), 10))
					break
				}
				// Larger numbers take ext4's new encoding, which mknod
				// does not write: make a 0:0 device, then set it.
				if u.St.Major > 0xfff || u.St.Minor > 0xfffff {
					return makeResult{}, fmt.Errorf("%s is device %d:%d, beyond what ext4 stores", u.Path, u.St.Major, u.St.Minor)
				}
				s.add("mknod", name, kind, "0", "0")
				s.add("sif", name, "block[1]", strconv.FormatUint(uint64(newEncodeDev(u.St.Major, u.St.Minor)), 10))
			case modeSocket:
				tmp := path.Base(socketTemp(u))
				s.add("mknod", tmp, "p")
				s.add("sif", tmp, "mode", fmt.Sprintf("0%o", u.St.Mode))
				s.add("ln", tmp, name)
				s.add("unlink", tmp)
			default:
				return makeResult{}, fmt.Errorf("%s has file type %o, which Flatten does not know", u.Path, u.St.Mode&modeType)
			}
			if !u.St.isDir() {
				first[u.St.Ino] = u.Path
			}
		}
		res.lists[dir] = len(s.cmds)
		s.add("ls", "-p")
	}
	cd("/")
	res.cmds = s.cmds
	return res, s.err
}

// madeInodes reads the first run's listings: the inode number of every
// entry made, by path. An entry missing, or of another type, is an error.
func madeInodes(p flattenPlan, mk makeResult, out []string) (map[string]uint32, error) {
	made := map[string]uint32{}
	order, byDir := grouped(p.Make, func(u upperFile) string { return u.Path })
	var errs []error
	for _, dir := range order {
		ents, err := parseLs(out[mk.lists[dir]])
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", dir, err)
		}
		names := map[string]dirent{}
		for _, e := range ents {
			names[e.Name] = e
		}
		for _, u := range byDir[dir] {
			e, ok := names[path.Base(u.Path)]
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("%s was not made", u.Path))
			case e.Mode&modeType != u.St.Mode&modeType:
				errs = append(errs, fmt.Errorf("%s was made with type %o, want %o", u.Path, e.Mode&modeType, u.St.Mode&modeType))
			default:
				made[u.Path] = e.Ino
			}
		}
	}
	return made, errors.Join(errs...)
}

// attributeScript renders the second run: every made file's and merged
// directory's attributes, by inode number, then the read-back: stat of
// each, and a listing of each directory a whiteout removed from.
func attributeScript(p flattenPlan, made map[string]uint32, data string) (attrs, verify []string, err error) {
	var s, v script
	names := map[uint32]int{}
	for _, u := range p.Make {
		if !u.St.isDir() {
			names[made[u.Path]]++
		}
	}
	done := map[uint32]bool{}
	for _, u := range p.Make {
		ino := made[u.Path]
		if done[ino] {
			continue
		}
		done[ino] = true
		attributes(&s, inodeRef(ino), u, data, nil)
		if n := names[ino]; n > 1 {
			s.add("sif", inodeRef(ino), "links_count", strconv.Itoa(n))
		}
		v.add("stat", inodeRef(ino))
	}
	for _, u := range p.Merge {
		d := p.Dst[u.Path]
		var had []string
		for _, x := range d.Xattrs {
			if x.Name != "system.data" {
				had = append(had, x.Name)
			}
		}
		attributes(&s, inodeRef(d.Ino), u, data, had)
		v.add("stat", inodeRef(d.Ino))
	}
	dirs, _ := grouped(p.Gone, func(g string) string { return g })
	for _, d := range dirs {
		v.add("ls", "-p", inodeRef(p.Dst[d].Ino))
	}
	return s.cmds, v.cmds, errors.Join(s.err, v.err)
}

// attributes renders the commands that give the inode ref the upper file's
// mode, owner, extended attributes and mtime (last: nothing after it
// changes it). had lists extended attributes the inode has already; those
// the upper lacks are removed.
func attributes(s *script, ref string, u upperFile, data string, had []string) {
	s.add("sif", ref, "mode", fmt.Sprintf("0%o", u.St.Mode))
	s.add("sif", ref, "uid", strconv.FormatUint(uint64(u.St.UID), 10))
	s.add("sif", ref, "gid", strconv.FormatUint(uint64(u.St.GID), 10))
	var keep []string
	for i, x := range u.St.Xattrs {
		if copied(x.Name) {
			s.add("ea_set", "-r", "-f", xattrFile(data, u.St.Ino, i), ref, x.Name)
			keep = append(keep, x.Name)
		}
	}
	for _, h := range had {
		if !slices.Contains(keep, h) {
			s.add("ea_rm", ref, h)
		}
	}
	s.add("sif", ref, "mtime", "@"+strconv.FormatInt(u.St.seconds(), 10))
	if u.St.HasExtra {
		s.add("sif", ref, "mtime_extra", fmt.Sprintf("0x%x", u.St.MtimeExtra))
	}
}

// checkFlattened compares the read-back (the verify script's output) with
// the plan: made files and merged directories have the upper's type, mode,
// owner, size, link count, mtime and extended attribute names; what
// whiteouts hid is gone.
func checkFlattened(p flattenPlan, made map[string]uint32, out []string) error {
	names := map[uint32]uint32{}
	for _, u := range p.Make {
		if !u.St.isDir() {
			names[made[u.Path]]++
		}
	}
	var errs []error
	i := 0
	check := func(u upperFile, links uint32) {
		got, ok, err := parseInodeStat(out[i])
		i++
		if err == nil && !ok {
			err = errors.New("no inode")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u.Path, err))
			return
		}
		w := u.St
		var diffs []string
		if got.Mode != w.Mode {
			diffs = append(diffs, fmt.Sprintf("mode %o, want %o", got.Mode, w.Mode))
		}
		if got.UID != w.UID || got.GID != w.GID {
			diffs = append(diffs, fmt.Sprintf("owner %d:%d, want %d:%d", got.UID, got.GID, w.UID, w.GID))
		}
		if !w.isDir() && got.Size != w.Size {
			diffs = append(diffs, fmt.Sprintf("size %d, want %d", got.Size, w.Size))
		}
		if !w.isDir() && got.Links != links {
			diffs = append(diffs, fmt.Sprintf("%d links, want %d", got.Links, links))
		}
		if got.Mtime != w.Mtime || (got.HasExtra && w.HasExtra && got.MtimeExtra != w.MtimeExtra) {
			diffs = append(diffs, fmt.Sprintf("mtime %x:%x, want %x:%x", got.Mtime, got.MtimeExtra, w.Mtime, w.MtimeExtra))
		}
		if g, want := xattrNames(got), xattrNames(w); !slices.Equal(g, want) {
			diffs = append(diffs, fmt.Sprintf("extended attributes %q, want %q", g, want))
		}
		if len(diffs) > 0 {
			errs = append(errs, fmt.Errorf("%s: %s", u.Path, strings.Join(diffs, ", ")))
		}
	}
	done := map[uint32]bool{}
	for _, u := range p.Make {
		ino := made[u.Path]
		if !done[ino] {
			done[ino] = true
			check(u, names[ino])
		}
	}
	for _, u := range p.Merge {
		check(u, 0)
	}
	dirs, byDir := grouped(p.Gone, func(g string) string { return g })
	for _, d := range dirs {
		ents, err := parseLs(out[i])
		i++
		if err != nil {
			errs = append(errs, fmt.Errorf("listing %s: %w", d, err))
			continue
		}
		for _, g := range byDir[d] {
			if slices.ContainsFunc(ents, func(e dirent) bool { return e.Name == path.Base(g) }) {
				errs = append(errs, fmt.Errorf("%s is still there, though the layer deletes it", g))
			}
		}
	}
	return errors.Join(errs...)
}

// xattrNames lists an inode's copied extended attribute names, sorted.
func xattrNames(s inodeStat) []string {
	var n []string
	for _, x := range s.Xattrs {
		if copied(x.Name) {
			n = append(n, x.Name)
		}
	}
	slices.Sort(n)
	return n
}
