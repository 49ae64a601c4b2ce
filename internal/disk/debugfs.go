package disk

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// DebugfsArgv is the command that runs a debugfs script read from standard
// input against image, read-only unless write is set. With image empty the
// script opens (and closes) file systems itself with `open`.
func DebugfsArgv(image string, write bool) []string {
	argv := []string{"debugfs"}
	if write {
		argv = append(argv, "-w")
	}
	argv = append(argv, "-f", "-")
	if image != "" {
		argv = append(argv, image)
	}
	return argv
}

// debugfs runs cmds in one debugfs process and returns each command's
// output. debugfs exits 0 even when commands fail (it reports on standard
// error), so callers judge success from the outputs.
func (m *Manager) debugfs(ctx context.Context, image string, write bool, cmds []string) ([]string, error) {
	argv, err := m.argv(DebugfsArgv(image, write)...)
	if err != nil {
		return nil, err
	}
	script := strings.Join(cmds, "\n") + "\n"
	out, err := m.run.RunInput(ctx, strings.NewReader(script), argv...)
	if err != nil {
		return nil, err
	}
	return splitSections(string(out), cmds)
}

// splitSections cuts debugfs script output into one piece per command.
// debugfs echoes every command it reads from a script as "debugfs: CMD\n"
// before running it; a piece is what follows the echo up to the next one.
func splitSections(out string, cmds []string) ([]string, error) {
	type span struct{ echo, body int }
	spans := make([]span, len(cmds))
	pos := 0
	for i, c := range cmds {
		marker := "debugfs: " + c + "\n"
		j := strings.Index(out[pos:], marker)
		if j < 0 {
			return nil, fmt.Errorf("debugfs output lacks the echo of %q", c)
		}
		spans[i] = span{pos + j, pos + j + len(marker)}
		pos = spans[i].body
	}
	res := make([]string, len(cmds))
	for i, s := range spans {
		end := len(out)
		if i+1 < len(spans) {
			end = spans[i+1].echo
		}
		res[i] = out[s.body:end]
	}
	return res, nil
}

// maxLine bounds a script line: debugfs reads its script with fgets into
// an 8 KiB buffer and would cut a longer line into two commands.
const maxLine = 8000

// script is a debugfs command script under construction. add quotes the
// arguments for debugfs's parser; the first argument it cannot carry (one
// holding a newline, carriage return or NUL: scripts are read line by line)
// or line it cannot read is kept in err, and the script must not run.
type script struct {
	cmds []string
	err  error
}

func (s *script) add(verb string, args ...string) {
	var b strings.Builder
	b.WriteString(verb)
	for _, a := range args {
		if strings.ContainsAny(a, "\n\r\x00") {
			if s.err == nil {
				s.err = fmt.Errorf("the name %q holds a newline, carriage return or NUL, which debugfs cannot take: rename or remove it and retry", a)
			}
			return
		}
		b.WriteByte(' ')
		b.WriteString(debugfsQuote(a))
	}
	if b.Len() > maxLine {
		if s.err == nil {
			s.err = fmt.Errorf("a debugfs command line of %d bytes is longer than debugfs reads (%.80s…)", b.Len(), b.String())
		}
		return
	}
	s.cmds = append(s.cmds, b.String())
}

// debugfsQuote quotes an argument for debugfs's command parser (lib/ss):
// inside double quotes, a doubled quote stands for one quote.
func debugfsQuote(p string) string {
	if p != "" && !strings.ContainsAny(p, " \t\"") {
		return p
	}
	return `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
}

// inodeRef names an inode by number, the way debugfs commands accept it in
// place of a path; no quoting or name lookup is involved.
func inodeRef(ino uint32) string { return "<" + strconv.FormatUint(uint64(ino), 10) + ">" }

var (
	statTypeMode = regexp.MustCompile(`Type:\s+(\S+(?: special)?)\s+Mode:\s+([0-7]+)`)
	statOwner    = regexp.MustCompile(`User:\s+(-?\d+)\s+Group:\s+(-?\d+).*?\sSize:\s+(\d+)`)
)

// parseStat reads type, mode, owner and size from debugfs's stat output;
// ok is false when the output holds no inode (the path does not exist).
func parseStat(out string) (inode, bool) {
	tm := statTypeMode.FindStringSubmatch(out)
	ow := statOwner.FindStringSubmatch(out)
	if tm == nil || ow == nil {
		return inode{}, false
	}
	perm, _ := strconv.ParseUint(tm[2], 8, 32)
	uid, _ := strconv.ParseInt(ow[1], 10, 64)
	gid, _ := strconv.ParseInt(ow[2], 10, 64)
	size, _ := strconv.ParseInt(ow[3], 10, 64)
	ino := inode{Type: tm[1], Perm: uint32(perm), UID: uint32(uid), GID: uint32(gid), Size: size}
	if d := statDevice.FindStringSubmatch(out); d != nil {
		major, _ := strconv.ParseUint(d[1], 10, 32)
		minor, _ := strconv.ParseUint(d[2], 10, 32)
		ino.Major, ino.Minor = uint32(major), uint32(minor)
	}
	return ino, true
}

// File type bits of st_mode, as ext4 stores them.
const (
	modeType    = 0o170000
	modeDir     = 0o040000
	modeRegular = 0o100000
	modeSymlink = 0o120000
	modeChar    = 0o020000
	modeBlock   = 0o060000
	modeFIFO    = 0o010000
	modeSocket  = 0o140000
)

// statTypes maps debugfs's type names to file type bits.
var statTypes = map[string]uint32{
	"directory": modeDir, "regular": modeRegular, "symlink": modeSymlink,
	"character special": modeChar, "block special": modeBlock,
	"FIFO": modeFIFO, "socket": modeSocket,
}

// inodeStat is what debugfs's stat says about one inode, as far as
// flattening and layers need it.
type inodeStat struct {
	Ino      uint32
	Mode     uint32 // file type and permission bits, as in st_mode
	UID, GID uint32
	Size     int64
	Links    uint32
	// Blocks is what the inode allocates, in 512-byte units.
	Blocks int64
	// FileACL is the external extended attribute block, 0 when none.
	FileACL uint64
	// Mtime and MtimeExtra are the raw on-disk fields: seconds, and
	// nanoseconds<<2 | epoch bits. HasExtra is false for small inodes.
	Mtime, MtimeExtra uint32
	HasExtra          bool
	// Major and Minor are a device's numbers.
	Major, Minor uint32
	// Target is a fast symlink's target (FastLink set); a slow symlink's
	// target lives in a data block and is read with dump.
	Target   string
	FastLink bool
	Xattrs   []xattrInfo
}

// xattrInfo is one extended attribute as stat lists it.
type xattrInfo struct {
	Name string
	Len  int
	// Value is the value as debugfs prints it, without quotes, for short
	// values; empty when it printed none (40 bytes or more).
	Value string
}

func (s inodeStat) isDir() bool { return s.Mode&modeType == modeDir }

// isWhiteout reports an overlayfs whiteout: a character device 0/0.
func (s inodeStat) isWhiteout() bool {
	return s.Mode&modeType == modeChar && s.Major == 0 && s.Minor == 0
}

// seconds is the full modification time in seconds since the epoch: the
// on-disk field is signed 32 bits, extended by two epoch bits.
func (s inodeStat) seconds() int64 {
	return int64(int32(s.Mtime)) + int64(s.MtimeExtra&3)<<32
}

var (
	statHead   = regexp.MustCompile(`^Inode: (\d+)\s+Type: ([a-zA-Z ]+?)\s+Mode:\s+([0-7]+)\s`)
	statLinks  = regexp.MustCompile(`\nLinks: (\d+)\s+Blockcount: (\d+)`)
	statACL    = regexp.MustCompile(`\nFile ACL: (\d+)`)
	statMtime  = regexp.MustCompile(`\n\s?mtime: 0x([0-9a-f]{8})(?::([0-9a-f]{8}))?`)
	statDevice = regexp.MustCompile(`Device major/minor number: (\d+):(\d+)`)
	statXattr  = regexp.MustCompile(`^  (.+) \((\d+)\)(?: = (.*))?$`)
)

// parseInodeStat parses the output of one debugfs stat command; ok is false
// when it holds no inode (the path does not exist). A stat output that
// starts like one but lacks a field is an error.
func parseInodeStat(out string) (inodeStat, bool, error) {
	h := statHead.FindStringSubmatch(out)
	if h == nil {
		return inodeStat{}, false, nil
	}
	var s inodeStat
	bad := func(what string) (inodeStat, bool, error) {
		return inodeStat{}, false, fmt.Errorf("debugfs stat output of inode %s lacks %s", h[1], what)
	}
	typ, ok := statTypes[h[2]]
	if !ok {
		return bad("a known file type (" + h[2] + ")")
	}
	ino, _ := strconv.ParseUint(h[1], 10, 32)
	perm, _ := strconv.ParseUint(h[3], 8, 32)
	s.Ino, s.Mode = uint32(ino), typ|uint32(perm)
	ow := statOwner.FindStringSubmatch(out)
	if ow == nil {
		return bad("owner and size")
	}
	uid, _ := strconv.ParseInt(ow[1], 10, 64)
	gid, _ := strconv.ParseInt(ow[2], 10, 64)
	s.UID, s.GID = uint32(uid), uint32(gid)
	s.Size, _ = strconv.ParseInt(ow[3], 10, 64)
	l := statLinks.FindStringSubmatch(out)
	if l == nil {
		return bad("a link count")
	}
	links, _ := strconv.ParseUint(l[1], 10, 32)
	s.Links = uint32(links)
	s.Blocks, _ = strconv.ParseInt(l[2], 10, 64)
	if a := statACL.FindStringSubmatch(out); a != nil {
		s.FileACL, _ = strconv.ParseUint(a[1], 10, 64)
	}
	mt := statMtime.FindStringSubmatch(out)
	if mt == nil {
		return bad("an mtime")
	}
	sec, _ := strconv.ParseUint(mt[1], 16, 32)
	s.Mtime = uint32(sec)
	if mt[2] != "" {
		extra, _ := strconv.ParseUint(mt[2], 16, 32)
		s.MtimeExtra, s.HasExtra = uint32(extra), true
	}
	switch s.Mode & modeType {
	case modeChar, modeBlock:
		d := statDevice.FindStringSubmatch(out)
		if d == nil {
			return bad("device numbers")
		}
		major, _ := strconv.ParseUint(d[1], 10, 32)
		minor, _ := strconv.ParseUint(d[2], 10, 32)
		s.Major, s.Minor = uint32(major), uint32(minor)
	case modeSymlink:
		// The target is printed raw, Size bytes long, so it is cut by
		// length rather than by the closing quote.
		const p = "\nFast link dest: \""
		if i := strings.LastIndex(out, p); i >= 0 {
			rest := out[i+len(p):]
			if int64(len(rest)) < s.Size+1 || rest[s.Size] != '"' {
				return bad("a whole fast link target")
			}
			s.Target, s.FastLink = rest[:s.Size], true
		}
	}
	if _, after, ok := strings.Cut(out, "\nExtended attributes:\n"); ok {
		for _, line := range strings.Split(after, "\n") {
			x := statXattr.FindStringSubmatch(line)
			if x == nil {
				break
			}
			n, _ := strconv.Atoi(x[2])
			v := x[3]
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			s.Xattrs = append(s.Xattrs, xattrInfo{Name: x[1], Len: n, Value: v})
		}
	}
	return s, true, nil
}

// dirent is one entry of a directory as `ls -p` lists it.
type dirent struct {
	Ino      uint32
	Mode     uint32
	UID, GID uint32
	Name     string
}

// lsRecord is one `ls -p` line: /INO/MODE/UID/GID/NAME/SIZE/ (SIZE empty
// for directories). A name cannot hold '/', so it is delimited exactly,
// even when it holds a newline.
var lsRecord = regexp.MustCompile(`^/(\d+)/([0-7]+)/(-?\d+)/(-?\d+)/([^/]*)/(\d*)/\n`)

// parseLs parses the output of one `ls -p` command, leaving out "." and
// "..". Anything that is not a record is an error, so output that does not
// belong to the command (a misplaced section) is not taken for entries.
func parseLs(out string) ([]dirent, error) {
	var ents []dirent
	for out != "" && out != "\n" {
		r := lsRecord.FindStringSubmatch(out)
		if r == nil {
			return nil, fmt.Errorf("unexpected debugfs ls output %.80q", out)
		}
		out = out[len(r[0]):]
		if r[5] == "." || r[5] == ".." {
			continue
		}
		ino, _ := strconv.ParseUint(r[1], 10, 32)
		mode, _ := strconv.ParseUint(r[2], 8, 32)
		uid, _ := strconv.ParseInt(r[3], 10, 64)
		gid, _ := strconv.ParseInt(r[4], 10, 64)
		ents = append(ents, dirent{Ino: uint32(ino), Mode: uint32(mode), UID: uint32(uid), GID: uint32(gid), Name: r[5]})
	}
	return ents, nil
}

// node is one file of an image found by walk: its path and its inode.
type node struct {
	Path string
	St   inodeStat
}

// maxDepth bounds a walk; a path cannot be deeper than PATH_MAX allows.
const maxDepth = 2048

// walk lists the trees under roots (absolute paths) in image: every file
// with its inode's stat, parents before children, roots that do not exist
// left out. It runs one debugfs process per directory level, each listing
// that level's directories and stat'ing the level above by inode number,
// so names never pass through debugfs's command parser.
func (m *Manager) walk(ctx context.Context, image string, roots []string) ([]node, error) {
	var s script
	for _, r := range roots {
		s.add("stat", r)
		s.add("ls", "-p", r)
	}
	if s.err != nil {
		return nil, s.err
	}
	out, err := m.debugfs(ctx, image, false, s.cmds)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", image, err)
	}
	type pending struct {
		path string
		ent  dirent
	}
	var nodes []node
	var next []pending
	for i, r := range roots {
		st, ok, err := parseInodeStat(out[2*i])
		if err != nil {
			return nil, fmt.Errorf("listing %s: %s: %w", image, r, err)
		}
		if !ok {
			continue
		}
		nodes = append(nodes, node{Path: r, St: st})
		if !st.isDir() {
			continue
		}
		ents, err := parseLs(out[2*i+1])
		if err != nil {
			return nil, fmt.Errorf("listing %s: %s: %w", image, r, err)
		}
		for _, e := range ents {
			next = append(next, pending{joinPath(r, e.Name), e})
		}
	}
	for depth := 0; len(next) > 0; depth++ {
		if depth > maxDepth {
			return nil, fmt.Errorf("listing %s: directories nest deeper than %d levels; is the file system damaged? (e2fsck -fn %s)", image, maxDepth, image)
		}
		var cmds []string
		statAt := map[uint32]int{}
		type listing struct{ at, of int }
		var dirs []listing
		for i, p := range next {
			if _, ok := statAt[p.ent.Ino]; !ok {
				statAt[p.ent.Ino] = len(cmds)
				cmds = append(cmds, "stat "+inodeRef(p.ent.Ino))
			}
			if p.ent.Mode&modeType == modeDir {
				dirs = append(dirs, listing{len(cmds), i})
				cmds = append(cmds, "ls -p "+inodeRef(p.ent.Ino))
			}
		}
		out, err := m.debugfs(ctx, image, false, cmds)
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", image, err)
		}
		stats := map[uint32]inodeStat{}
		for ino, at := range statAt {
			st, ok, err := parseInodeStat(out[at])
			if err == nil && (!ok || st.Ino != ino) {
				err = errors.New("no such inode in the stat output")
			}
			if err != nil {
				return nil, fmt.Errorf("listing %s: inode %d: %w", image, ino, err)
			}
			stats[ino] = st
		}
		var level []pending
		for _, p := range next {
			nodes = append(nodes, node{Path: p.path, St: stats[p.ent.Ino]})
		}
		for _, d := range dirs {
			p := next[d.of]
			ents, err := parseLs(out[d.at])
			if err != nil {
				return nil, fmt.Errorf("listing %s: %s: %w", image, p.path, err)
			}
			for _, e := range ents {
				level = append(level, pending{joinPath(p.path, e.Name), e})
			}
		}
		next = level
	}
	return nodes, nil
}

// joinPath joins an absolute directory path and a name.
func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}
