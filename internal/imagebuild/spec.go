package imagebuild

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"banger/packages"
)

// PackageFile is a parsed package file: Debian package names to install
// from the guest's archive, and local .deb files to upload and install.
type PackageFile struct {
	// Source is "default" for the repository's manifest, else the host path
	// the file was read from (empty when unknown).
	Source string
	// SHA256 is the hex sha256 of the file's bytes, what staleness compares.
	SHA256 string
	// Names are package names, optionally pinned as name=version.
	Names []string
	// Debs are absolute host paths of local package files.
	Debs []string
}

// Empty reports whether the file asks for nothing.
func (p PackageFile) Empty() bool { return len(p.Names) == 0 && len(p.Debs) == 0 }

var packageName = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?$`)

// ParsePackageFile parses a package file: one entry per line, '#' starts a
// comment, blank lines are ignored. An entry ending in ".deb" is a local
// package file, resolved against dir (absolute) when relative; anything else must be a
// Debian package name (optionally name=version). source is recorded as is.
func ParsePackageFile(data []byte, dir, source string) (PackageFile, error) {
	pf := PackageFile{Source: source, SHA256: SHA256Hex(data)}
	seen := map[string]bool{}
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		for _, f := range strings.Fields(line) {
			if seen[f] {
				continue
			}
			seen[f] = true
			switch {
			case strings.HasSuffix(f, ".deb"):
				p := f
				if !filepath.IsAbs(p) && hasControl(dir) {
					// apt and the upload take paths one per line: a NUL or
					// a newline would cut the name or smuggle in another.
					errs = append(errs, fmt.Errorf("line %d: local package %q is relative to a directory whose name has a control character (%q); use an absolute path", n, f, dir))
					continue
				}
				if hasControl(p) {
					errs = append(errs, fmt.Errorf("line %d: local package %q has a control character in its path", n, f))
					continue
				}
				if !filepath.IsAbs(p) {
					if !filepath.IsAbs(dir) {
						errs = append(errs, fmt.Errorf("line %d: local package %q is relative, but the package file's directory is unknown; use an absolute path", n, f))
						continue
					}
					p = filepath.Join(dir, p)
				}
				pf.Debs = append(pf.Debs, filepath.Clean(p))
			case packageName.MatchString(f):
				pf.Names = append(pf.Names, f)
			default:
				errs = append(errs, fmt.Errorf("line %d: %q is neither a Debian package name nor a .deb file", n, f))
			}
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return PackageFile{}, fmt.Errorf("parsing package file %s: %w", sourceName(source), err)
	}
	return pf, nil
}

// hasControl reports whether s holds an ASCII control character.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

func sourceName(source string) string {
	if source == "" {
		return "(inline)"
	}
	return source
}

// DefaultPackageFile returns the repository's default manifest, parsed.
// Its SHA256 is DefaultPackagesSHA256: it covers the setup script too.
func DefaultPackageFile() PackageFile {
	pf, err := ParsePackageFile(packages.Default(), "", packages.DefaultName)
	if err != nil {
		// The manifest is embedded at build time and tested; a bad one is a
		// programming error.
		panic(err)
	}
	pf.SHA256 = DefaultPackagesSHA256()
	return pf
}

// DefaultSetupScript is the script a build from the default manifest runs
// right after its packages (packages/default-setup.sh): it sets the image
// up beyond what the packages do, e.g. where Docker keeps its data.
func DefaultSetupScript() Script {
	return Script{Name: packages.DefaultSetupName, Content: string(packages.DefaultSetup())}
}

// DefaultPackagesSHA256 is the sha256 of the current default manifest and
// its setup script (the manifest, a NUL byte, the script), what images
// built from the default manifest record: a change to either makes them
// stale.
func DefaultPackagesSHA256() string {
	return SHA256Hex(append(append(packages.Default(), 0), packages.DefaultSetup()...))
}

// SHA256Hex returns the hex sha256 of data.
func SHA256Hex(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// Copy is one --copy SRC:DEST: a host file or directory and its guest path.
type Copy struct {
	Src  string `json:"src"`
	Dest string `json:"dest"`
}

// ParseCopy parses "SRC:DEST". DEST must be an absolute guest path; SRC is
// everything before the last ":/" so host paths may contain colons.
func ParseCopy(arg string) (Copy, error) {
	i := strings.LastIndex(arg, ":/")
	if i <= 0 {
		return Copy{}, fmt.Errorf("--copy %q: want SRC:DEST with an absolute guest path DEST, e.g. ./etc:/etc/myapp", arg)
	}
	c := Copy{Src: arg[:i], Dest: path.Clean(arg[i+1:])}
	if c.Dest == "/" {
		return Copy{}, fmt.Errorf("--copy %q: copying onto the guest's / is refused; name a directory", arg)
	}
	return c, nil
}

// Script is one --run script: its file name (for logs) and content.
type Script struct {
	Name    string `json:"name"`
	Content string `json:"content"`
}

// Plan is what one build provisions, in order: copies, packages, kernel
// modules, scripts.
type Plan struct {
	Copies   []Copy
	Packages PackageFile
	// Modules makes sure the modules of the image's kernel are installed.
	Modules bool
	// KernelVersion is the image's kernel (uname -r in the guest).
	KernelVersion string
	Scripts       []Script
	// AptProxy, when set, is the HTTP proxy the guest's apt uses while the
	// image is built (image.ParseAptProxy's form); the image does not keep it.
	AptProxy string
}

// DefaultSource is PackageFile.Source of the repository's manifest.
const DefaultSource = packages.DefaultName
