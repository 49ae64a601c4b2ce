package archive

import (
	"fmt"
	"path"
	"strings"
)

// The guest side of a copy is GNU tar run through exec. These argvs are
// meant for guest.ExecRequest.Argv, which quotes each argument.

// Source splits a path to copy into the directory tar runs in and the name
// it archives: "/a/b" is ("/a", "b"); "/a/b/." (copy the contents, as
// docker cp's SRC/.) is ("/a/b", "."); "/" is ("/", ".").
func Source(p string) (dir, name string) {
	if p == "." || strings.HasSuffix(p, "/.") {
		dir = strings.TrimSuffix(strings.TrimSuffix(p, "."), "/")
		if dir == "" {
			dir = "/"
			if !strings.HasPrefix(p, "/") {
				dir = "."
			}
		}
		return dir, "."
	}
	clean := path.Clean(p)
	if clean == "/" {
		return "/", "."
	}
	return path.Dir(clean), path.Base(clean)
}

// CreateArgv is the guest command that writes src as a tar stream on its
// stdout, for Extract on the host: the top entry is src's own name (or
// "." for a SRC/.), holes of sparse files are left out (--sparse),
// symlinks are stored as links.
func CreateArgv(src string) []string {
	dir, name := Source(src)
	return []string{"tar", "-c", "-f", "-", "--sparse", "--numeric-owner", "-C", dir, "--", name}
}

// ExtractArgv is the guest command that unpacks a tar stream from its
// stdin into dir, which must exist; as root, GNU tar keeps the archive's
// modes and owners (root, as Write records them) and turns the PAX sparse
// entries Write makes back into sparse files.
func ExtractArgv(dir string) []string {
	return []string{"tar", "-x", "-f", "-", "-C", dir}
}

// PathKind is what a guest path is, as ProbeArgv prints it.
type PathKind string

// Path kinds.
const (
	KindDir      PathKind = "dir"      // an existing directory (or a symlink to one)
	KindFile     PathKind = "file"     // anything else that exists
	KindMissing  PathKind = "missing"  // does not exist; its parent directory does
	KindNoParent PathKind = "noparent" // neither it nor its parent exists
)

// ProbeArgv is the guest command that prints the PathKind of p on one line.
func ProbeArgv(p string) []string {
	return []string{"sh", "-c", `if [ -d "$1" ]; then echo dir; elif [ -e "$1" ] || [ -L "$1" ]; then echo file; elif [ -d "$(dirname -- "$1")" ]; then echo missing; else echo noparent; fi`, "probe", p}
}

// ParseProbe reads ProbeArgv's output.
func ParseProbe(out []byte) (PathKind, error) {
	switch k := PathKind(strings.TrimSpace(string(out))); k {
	case KindDir, KindFile, KindMissing, KindNoParent:
		return k, nil
	}
	return "", fmt.Errorf("probing the guest path: unexpected answer %q", out)
}

// Upload says where Write's stream goes in the guest: it is unpacked with
// ExtractArgv(Dir), and Write names its top entry Name ("." for the
// contents of a directory only).
type Upload struct {
	Dir, Name string
}

// PlanUpload applies docker cp's naming to a copy from the host path src
// (a directory when srcIsDir) to the guest path dst of the given kind:
// into an existing directory the source keeps its name (SRC/. puts the
// contents there); a missing dst becomes the copy; a file is overwritten
// by a file.
func PlanUpload(src string, srcIsDir bool, dst string, kind PathKind) (Upload, error) {
	_, name := Source(src)
	switch kind {
	case KindDir:
		return Upload{Dir: dst, Name: name}, nil
	case KindFile:
		if srcIsDir {
			return Upload{}, fmt.Errorf("copying %s: the guest path %s is a file; a directory cannot be copied onto it", src, dst)
		}
		fallthrough
	case KindMissing:
		if kind == KindMissing && !srcIsDir && strings.HasSuffix(dst, "/") {
			return Upload{}, fmt.Errorf("copying %s: the guest directory %s does not exist (create it first, or leave out the trailing /)", src, dst)
		}
		clean := path.Clean(dst)
		return Upload{Dir: path.Dir(clean), Name: path.Base(clean)}, nil
	case KindNoParent:
		return Upload{}, fmt.Errorf("copying %s: the guest directory %s does not exist", src, path.Dir(path.Clean(dst)))
	}
	return Upload{}, fmt.Errorf("copying %s: unknown guest path kind %q", src, kind)
}
