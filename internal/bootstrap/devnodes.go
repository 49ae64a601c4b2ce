package bootstrap

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// devNode is an entry of the image's /dev.
type devNode struct {
	Name   string
	Mode   uint32 // type and permission bits, as in st_mode
	Major  int    // character devices
	Minor  int    // character devices
	Target string // symbolic links
}

// modeType masks the file type bits of st_mode (modeDir and the others
// are in cpio.go).
const modeType = 0o170000

// devNodes is the /dev that mmdebstrap gives a chroot it makes as root
// (and puts in the tarballs it makes in any mode). The guest never sees it
// (the initramfs moves devtmpfs over it), but the image should not depend on
// how it was built: mmdebstrap's unshare mode, which both modes use, leaves
// /dev of a directory empty because device nodes cannot be made there, so
// Build adds what is missing to the finished image with debugfs.
func devNodes() []devNode {
	return []devNode{
		{Name: "console", Mode: modeCharDev | 0o666, Major: 5, Minor: 1},
		{Name: "fd", Mode: modeSymlink | 0o777, Target: "/proc/self/fd"},
		{Name: "full", Mode: modeCharDev | 0o666, Major: 1, Minor: 7},
		{Name: "null", Mode: modeCharDev | 0o666, Major: 1, Minor: 3},
		{Name: "ptmx", Mode: modeCharDev | 0o666, Major: 5, Minor: 2},
		{Name: "pts", Mode: modeDir | 0o755},
		{Name: "random", Mode: modeCharDev | 0o666, Major: 1, Minor: 8},
		{Name: "shm", Mode: modeDir | 0o755},
		{Name: "stderr", Mode: modeSymlink | 0o777, Target: "/proc/self/fd/2"},
		{Name: "stdin", Mode: modeSymlink | 0o777, Target: "/proc/self/fd/0"},
		{Name: "stdout", Mode: modeSymlink | 0o777, Target: "/proc/self/fd/1"},
		{Name: "tty", Mode: modeCharDev | 0o666, Major: 5, Minor: 0},
		{Name: "urandom", Mode: modeCharDev | 0o666, Major: 1, Minor: 9},
		{Name: "zero", Mode: modeCharDev | 0o666, Major: 1, Minor: 5},
	}
}

// missingDevNodes returns the entries of devNodes that tree/dev lacks.
func missingDevNodes(tree string) []devNode {
	var out []devNode
	for _, n := range devNodes() {
		if _, err := os.Lstat(filepath.Join(tree, "dev", n.Name)); errors.Is(err, os.ErrNotExist) {
			out = append(out, n)
		}
	}
	return out
}

// debugfsDevScript returns the debugfs commands that create nodes in the
// image's /dev, owned by root (debugfs creates inodes with uid and gid 0).
// debugfs's mknod takes the last path element literally, hence the cd;
// it also leaves the permission bits at 0, which sif sets.
func debugfsDevScript(nodes []devNode) string {
	var b strings.Builder
	b.WriteString("cd /dev\n")
	for _, n := range nodes {
		switch n.Mode & modeType {
		case modeCharDev:
			fmt.Fprintf(&b, "mknod %s c %d %d\n", n.Name, n.Major, n.Minor)
			fmt.Fprintf(&b, "sif %s mode 0%o\n", n.Name, n.Mode)
		case modeSymlink:
			fmt.Fprintf(&b, "symlink %s %s\n", n.Name, n.Target)
		case modeDir:
			fmt.Fprintf(&b, "mkdir %s\n", n.Name)
			fmt.Fprintf(&b, "sif %s mode 0%o\n", n.Name, n.Mode)
		}
	}
	return b.String()
}

// lsEntry is one line of `debugfs -R 'ls -p DIR'`.
type lsEntry struct {
	Mode     uint32
	UID, GID int
}

// parseDebugfsLs parses `debugfs -R 'ls -p DIR'` output, whose lines read
// `/inode/mode/uid/gid/name/size/` with the mode in octal, into entries by
// name. A name listed twice is an error: debugfs would have made a
// duplicate directory entry.
func parseDebugfsLs(out []byte) (map[string]lsEntry, error) {
	entries := map[string]lsEntry{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		f := strings.Split(line, "/")
		if len(f) != 8 || f[0] != "" || f[7] != "" {
			return nil, fmt.Errorf("parsing debugfs listing line %q", line)
		}
		mode, err1 := strconv.ParseUint(f[2], 8, 32)
		uid, err2 := strconv.Atoi(f[3])
		gid, err3 := strconv.Atoi(f[4])
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("parsing debugfs listing line %q: %w", line, err)
		}
		if _, dup := entries[f[5]]; dup {
			return nil, fmt.Errorf("parsing debugfs listing: %s is listed twice", f[5])
		}
		entries[f[5]] = lsEntry{Mode: uint32(mode), UID: uid, GID: gid}
	}
	return entries, nil
}

// checkDevNodes compares a listing of the image's /dev with devNodes.
func checkDevNodes(listing map[string]lsEntry) error {
	var errs []error
	for _, n := range devNodes() {
		e, ok := listing[n.Name]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("/dev/%s is missing", n.Name))
		case e.Mode != n.Mode || e.UID != 0 || e.GID != 0:
			errs = append(errs, fmt.Errorf("/dev/%s has mode %o owner %d:%d, want mode %o owner 0:0", n.Name, e.Mode, e.UID, e.GID, n.Mode))
		}
	}
	return errors.Join(errs...)
}

// addDevNodes gives the image the /dev entries tree lacks and checks the
// result: debugfs reports failed commands only in its output, not in its
// exit status.
func (b *builder) addDevNodes(ctx context.Context, tree, image string) error {
	missing := missingDevNodes(tree)
	if len(missing) > 0 {
		script := filepath.Join(filepath.Dir(image), "dev.debugfs")
		if err := os.WriteFile(script, []byte(debugfsDevScript(missing)), 0o644); err != nil {
			return fmt.Errorf("writing /dev script: %w", err)
		}
		defer os.Remove(script)
		if err := b.deps.Runner.Run(ctx, "debugfs", "-w", "-f", script, image); err != nil {
			return fmt.Errorf("adding /dev nodes to the root filesystem: %w", err)
		}
	}
	out, err := b.deps.Runner.Output(ctx, "debugfs", "-R", "ls -p /dev", image)
	if err != nil {
		return fmt.Errorf("listing /dev of the root filesystem: %w", err)
	}
	listing, err := parseDebugfsLs(out)
	if err == nil {
		err = checkDevNodes(listing)
	}
	if err != nil {
		return fmt.Errorf("checking /dev of the root filesystem: %w", err)
	}
	return nil
}
