package disk

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// A layer disk holds what one VM writes over a shared, read-only image:
// an ext4 file system labelled banger-layer with two root-owned
// directories, /upper and /work, which the guest's initramfs mounts as
// overlayfs (lowerdir the image, upperdir=/upper, workdir=/work) to make
// the root.

// LayerLabel is the ext4 label of every layer disk.
const LayerLabel = "banger-layer"

// MinLayerSize is the smallest layer disk MakeLayer makes.
const MinLayerSize = 16 << 20

// Layer paths: the overlay's upper and work directories.
const (
	layerUpper = "/upper"
	layerWork  = "/work"
)

// MkfsLayerArgv is the command that formats a layer disk file.
func MkfsLayerArgv(path string) []string { return mkfsArgv(LayerLabel, path) }

// mkfsArgv formats a new sparse file as an empty ext4 file system labelled
// label whose root directory is owned by root, with no blocks reserved for
// root (the guest's user is root anyway). It writes as little as it can:
// mkfs discards the file (punching holes, which read back as zeros, so it
// marks the inode tables zeroed and the guest never initialises them) and
// leaves the journal unwritten (lazy_journal_init: a fresh file reads as
// zeros, which is what a journal's unused blocks must be). A 1 GiB disk
// allocates under 1 MiB, an 8 GiB one about 4 MiB.
func mkfsArgv(label, path string) []string {
	return []string{"mkfs.ext4", "-F", "-q", "-L", label, "-m", "0",
		"-E", "root_owner=0:0,discard,lazy_itable_init=1,lazy_journal_init=1", path}
}

// layerDirs are the directories of an empty layer.
func layerDirs() []guestDir {
	return []guestDir{{Path: layerUpper, Perm: 0o755}, {Path: layerWork, Perm: 0o755}}
}

// MakeLayer makes a new sparse file of size bytes at path holding an empty
// layer: an ext4 file system labelled banger-layer with root-owned 0755
// directories /upper and /work. It formats the file directly (no loop
// device, no mount, no root), under a temporary name renamed into place at
// the end. An existing path is an error, never overwritten.
func (m *Manager) MakeLayer(ctx context.Context, path string, size int64) error {
	if err := checkSize(size); err != nil {
		return fmt.Errorf("making layer disk %s: %w", path, err)
	}
	if size < MinLayerSize {
		return fmt.Errorf("making layer disk %s: size %d is below the minimum of %d MiB", path, size, MinLayerSize>>20)
	}
	err := m.blank(ctx, LayerTemplate(size), size, path, func(ctx context.Context, file string) error {
		if _, err := m.tool(ctx, MkfsLayerArgv(file)...); err != nil {
			return err
		}
		return m.applyEdit(ctx, file, edit{Dirs: layerDirs()}, nil)
	})
	if err != nil {
		return fmt.Errorf("making layer disk %s: %w", path, err)
	}
	m.log.Debug("made layer disk", "path", path, "size", size)
	return nil
}

// WriteLayerIdentity writes id into the layer disk at layer, over the image
// base, without mounting either: the files WriteIdentity writes into a root
// disk go into the layer's /upper instead, so the guest's overlay root
// shows them. The directories they need are made in /upper with the mode,
// owner and group the base gives them (overlayfs shows the upper
// directory's attributes for a merged one), or WriteIdentity's when the
// base lacks them; directories already in /upper keep theirs. /upper takes
// the base root's attributes. The base's other SSH host keys are hidden by
// whiteouts. When the base's /etc/fstab mounts /, the layer gets a copy
// without that line: the root is the overlay now. Everything is read back
// afterwards. base is only read; the VM must not be running.
func (m *Manager) WriteLayerIdentity(ctx context.Context, base, layer string, id Identity) error {
	files, err := id.files()
	if err != nil {
		return fmt.Errorf("writing guest identity into layer %s: %w", layer, err)
	}
	e, existing, err := m.layerIdentityEdit(ctx, base, layer, files)
	if err != nil {
		return fmt.Errorf("writing guest identity into layer %s: %w", layer, err)
	}
	if err := m.applyEdit(ctx, layer, e, existing); err != nil {
		return fmt.Errorf("writing guest identity into layer %s: %w", layer, err)
	}
	m.log.Debug("wrote guest identity", "path", layer, "base", base, "hostname", id.Hostname)
	return nil
}

// layerProbe is what WriteLayerIdentity reads from the base and the layer
// before writing.
type layerProbe struct {
	Base  map[string]inode // base paths: /, identity directories, stale keys, /etc/fstab
	Upper map[string]inode // layer paths under /upper
	Fstab string           // the base's /etc/fstab, when it is a regular file
}

const fstabPath = "/etc/fstab"

// layerIdentityEdit probes base and layer in one debugfs process (it opens
// one, then the other) and works out the edit.
func (m *Manager) layerIdentityEdit(ctx context.Context, base, layer string, files []guestFile) (edit, map[string]inode, error) {
	basePaths := []string{"/"}
	for _, d := range identityDirs() {
		basePaths = append(basePaths, d.Path)
	}
	basePaths = append(append(basePaths, staleHostKeys()...), fstabPath)
	upperPaths := []string{layerUpper}
	for _, p := range basePaths {
		if p != "/" {
			upperPaths = append(upperPaths, layerUpper+p)
		}
	}
	for _, f := range files {
		upperPaths = append(upperPaths, layerUpper+f.Path)
	}
	var s script
	s.add("open", base)
	for _, p := range basePaths {
		s.add("stat", p)
	}
	s.add("cat", fstabPath)
	s.add("close")
	s.add("open", layer)
	for _, p := range upperPaths {
		s.add("stat", p)
	}
	s.add("close")
	if s.err != nil {
		return edit{}, nil, s.err
	}
	out, err := m.debugfs(ctx, "", false, s.cmds)
	if err != nil {
		return edit{}, nil, fmt.Errorf("inspecting the image and the layer: %w", err)
	}
	out = out[1:] // open
	p := layerProbe{Base: existingFrom(basePaths, out), Upper: existingFrom(upperPaths, out[len(basePaths)+3:])}
	if ino, ok := p.Base[fstabPath]; ok && ino.Type == "regular" {
		p.Fstab = out[len(basePaths)]
		if int64(len(p.Fstab)) != ino.Size {
			return edit{}, nil, fmt.Errorf("reading %s from %s: got %d bytes, the inode says %d", fstabPath, base, len(p.Fstab), ino.Size)
		}
	}
	if _, ok := p.Base["/"]; !ok {
		return edit{}, nil, fmt.Errorf("inspecting %s: no root directory; is it an ext4 image?", base)
	}
	e, err := layerIdentity(files, p)
	return e, p.Upper, err
}

// layerIdentity works out the edit that puts files into a layer's /upper
// over a base, from what the probe found.
func layerIdentity(files []guestFile, p layerProbe) (edit, error) {
	if ino, ok := p.Upper[layerUpper]; !ok || ino.Type != "directory" {
		return edit{}, errors.New("it has no /upper directory; is it a layer disk made by MakeLayer?")
	}
	var e edit
	// dir adds the upper directory for base path bp: the upper's own
	// attributes when it exists, else the base's, else def's.
	dir := func(bp string, def guestDir) error {
		up := layerUpper + bp
		if bp == "/" {
			up = layerUpper
		}
		if ino, ok := p.Upper[up]; ok {
			if ino.Type != "directory" {
				return fmt.Errorf("%s in the layer is a %s, not a directory", up, ino.Type)
			}
			e.Dirs = append(e.Dirs, guestDir{Path: up, Perm: ino.Perm, UID: ino.UID, GID: ino.GID})
			return nil
		}
		if ino, ok := p.Base[bp]; ok {
			if ino.Type != "directory" {
				return fmt.Errorf("%s in the image is a %s, not a directory", bp, ino.Type)
			}
			e.Dirs = append(e.Dirs, guestDir{Path: up, Perm: ino.Perm, UID: ino.UID, GID: ino.GID})
			return nil
		}
		def.Path = up
		e.Dirs = append(e.Dirs, def)
		return nil
	}
	if err := dir("/", guestDir{}); err != nil {
		return edit{}, err
	}
	for _, d := range identityDirs() {
		if err := dir(d.Path, d); err != nil {
			return edit{}, err
		}
	}
	for _, f := range files {
		f.Path = layerUpper + f.Path
		e.Files = append(e.Files, f)
	}
	for _, k := range staleHostKeys() {
		if ino, ok := p.Base[k]; ok && ino.Type != "directory" {
			e.Whiteouts = append(e.Whiteouts, layerUpper+k)
		}
	}
	if fstab, ok := fstabWithoutRoot(p.Fstab); ok {
		ino := p.Base[fstabPath]
		e.Files = append(e.Files, guestFile{Path: layerUpper + fstabPath, Data: []byte(fstab), Perm: ino.Perm, UID: ino.UID, GID: ino.GID})
	}
	return e, nil
}

// fstabWithoutRoot returns fstab with every line that mounts / turned into
// a comment, and whether it had one. A VM with a layer boots with the
// overlay as its root, which its initramfs mounts; the image's root line
// would have systemd remount or check a device that is now the read-only
// lower layer.
func fstabWithoutRoot(fstab string) (string, bool) {
	lines := strings.SplitAfter(fstab, "\n")
	found := false
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") || f[1] != "/" {
			continue
		}
		found = true
		lines[i] = "# banger: / is an overlay of the image and this VM's layer, mounted by the initramfs; the image's line was:\n# " + l
		if !strings.HasSuffix(l, "\n") {
			lines[i] += "\n"
		}
	}
	return strings.Join(lines, ""), found
}
