package runtimebundle

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
)

// ManifestFile is the conventional name of the artifact manifest.
const ManifestFile = "runtime-bundle.toml"

// Manifest is runtime-bundle.toml: a list of bundle archives.
type Manifest struct {
	Artifacts []Artifact `toml:"artifact"`
}

// Artifact is one bundle archive. URL is file://, https://, or a local path
// (relative paths are relative to the manifest file).
type Artifact struct {
	Name   string `toml:"name"`
	URL    string `toml:"url"`
	SHA256 string `toml:"sha256"`
	Size   int64  `toml:"size,omitempty"`
}

// LoadManifest reads and validates a manifest file.
func LoadManifest(path string) (Manifest, error) {
	var m Manifest
	data, err := os.ReadFile(path)
	if err != nil {
		return m, fmt.Errorf("reading runtime manifest: %w", err)
	}
	if _, err := toml.Decode(string(data), &m); err != nil {
		return m, fmt.Errorf("parsing runtime manifest %s: %w", path, err)
	}
	return m, nil
}

// Render returns m as TOML with a header comment.
func (m Manifest) Render() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# banger runtime bundle manifest: each [[artifact]] is a bundle archive\n# (url: file://, https:// or a local path; sha256 of the archive).\n")
	if len(m.Artifacts) == 0 {
		return b.Bytes(), nil
	}
	b.WriteString("\n")
	if err := toml.NewEncoder(&b).Encode(m); err != nil {
		return nil, fmt.Errorf("encoding runtime manifest: %w", err)
	}
	return b.Bytes(), nil
}

// Artifact returns the artifact called name, or the only one when name is
// empty.
func (m Manifest) Artifact(name string) (Artifact, error) {
	if name == "" {
		switch len(m.Artifacts) {
		case 1:
			return m.Artifacts[0], nil
		case 0:
			return Artifact{}, errors.New("the runtime manifest lists no artifacts: " + NoURLHint)
		default:
			return Artifact{}, errors.New("the runtime manifest lists several artifacts: name one")
		}
	}
	for _, a := range m.Artifacts {
		if a.Name == name {
			return a, nil
		}
	}
	return Artifact{}, fmt.Errorf("the runtime manifest has no artifact %q", name)
}

// NoURLHint explains the local-first flow when a manifest carries no URL.
// The README, `make help` and docs/runtime-bundle.md say the same.
const NoURLHint = "the checked-in runtime-bundle.toml carries no URLs; run `make runtime-bundle`, which stages an archive and writes a local manifest copy with its url and sha256, then `banger runtime install --manifest build/runtime-bundle.toml`"

// Validate checks the artifact's fields.
func (a Artifact) Validate() error {
	var errs []error
	if a.URL == "" {
		errs = append(errs, fmt.Errorf("artifact %q has no url: %s", a.Name, NoURLHint))
	}
	if len(a.SHA256) != 64 || strings.Trim(strings.ToLower(a.SHA256), "0123456789abcdef") != "" {
		errs = append(errs, fmt.Errorf("artifact %q: sha256 %q is not 64 hex digits", a.Name, a.SHA256))
	}
	return errors.Join(errs...)
}

// location says how to fetch an artifact: a local file path, or an https URL.
type location struct {
	Path  string
	HTTPS string
}

// locate interprets an artifact URL relative to the manifest's directory.
func locate(rawURL, manifestDir string) (location, error) {
	switch {
	case strings.HasPrefix(rawURL, "file://"):
		u, err := url.Parse(rawURL)
		if err != nil {
			return location{}, fmt.Errorf("parsing artifact url %q: %w", rawURL, err)
		}
		if u.Host != "" && u.Host != "localhost" {
			return location{}, fmt.Errorf("artifact url %q: file URLs must be local (file:///path)", rawURL)
		}
		return location{Path: u.Path}, nil
	case strings.HasPrefix(rawURL, "https://"):
		return location{HTTPS: rawURL}, nil
	case strings.Contains(rawURL, "://"):
		return location{}, fmt.Errorf("artifact url %q: use file://, https:// or a local path", rawURL)
	case filepath.IsAbs(rawURL):
		return location{Path: rawURL}, nil
	default:
		return location{Path: filepath.Join(manifestDir, rawURL)}, nil
	}
}

// DocPhrases are the exact phrases users see in errors that the docs, the
// README and `make help` must repeat word for word; tests keep them in sync.
func DocPhrases() []string {
	return []string{
		"make runtime-bundle",
		"banger runtime install --manifest",
		"build/runtime-bundle.toml",
		"banger runtime verify",
	}
}
