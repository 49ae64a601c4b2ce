package runtimebundle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// InstallRecord is written as .install.json into an installed bundle.
type InstallRecord struct {
	Artifact    string    `json:"artifact"`
	URL         string    `json:"url"`
	SHA256      string    `json:"sha256"`
	InstalledAt time.Time `json:"installed_at"`
}

const installRecordFile = ".install.json"

// Deps are Install's dependencies.
type Deps struct {
	// HTTP fetches https:// artifacts; nil means http.DefaultClient.
	HTTP *http.Client
	Log  *slog.Logger
}

// InstallOptions say what to install where.
type InstallOptions struct {
	Manifest string // path of a runtime-bundle.toml
	Artifact string // artifact name; empty when the manifest has one
	Dest     string // bundle directory to create or replace
}

// Install fetches the artifact, checks its sha256 against the manifest
// while reading it, unpacks it beside Dest, verifies every file against
// the archive's bundle.json, and only then swaps it into Dest. Any failure,
// a checksum mismatch included, leaves an existing bundle at Dest as it was.
func Install(ctx context.Context, deps Deps, opts InstallOptions) (Bundle, error) {
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	m, err := LoadManifest(opts.Manifest)
	if err != nil {
		return Bundle{}, err
	}
	a, err := m.Artifact(opts.Artifact)
	if err != nil {
		return Bundle{}, err
	}
	if err := a.Validate(); err != nil {
		return Bundle{}, err
	}
	dest, err := filepath.Abs(opts.Dest)
	if err != nil {
		return Bundle{}, err
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return Bundle{}, fmt.Errorf("installing runtime bundle: %w", err)
	}
	loc, err := locate(a.URL, filepath.Dir(opts.Manifest))
	if err != nil {
		return Bundle{}, err
	}
	// Fetch into a temporary file first so that nothing is unpacked before
	// the whole archive has been checked.
	tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".download-")
	if err != nil {
		return Bundle{}, fmt.Errorf("installing runtime bundle: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	deps.Log.Info("fetching runtime bundle", "artifact", a.Name, "url", a.URL)
	sum, err := fetch(ctx, deps, loc, tmp)
	if err != nil {
		return Bundle{}, fmt.Errorf("fetching runtime bundle %s from %s: %w", a.Name, a.URL, err)
	}
	if sum != a.SHA256 {
		return Bundle{}, fmt.Errorf("installing runtime bundle %s: %w: the archive's sha256 is %s but the manifest says %s; the archive was altered or the manifest is stale, nothing was installed", a.Name, ErrChecksum, sum, a.SHA256)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return Bundle{}, err
	}
	stage, err := os.MkdirTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".install-")
	if err != nil {
		return Bundle{}, fmt.Errorf("installing runtime bundle: %w", err)
	}
	defer os.RemoveAll(stage)
	if err := unpack(ctx, tmp, stage); err != nil {
		return Bundle{}, fmt.Errorf("installing runtime bundle %s: %w", a.Name, err)
	}
	if err := Verify(stage); err != nil {
		return Bundle{}, fmt.Errorf("installing runtime bundle %s: %w", a.Name, err)
	}
	rec, _ := json.MarshalIndent(InstallRecord{Artifact: a.Name, URL: a.URL, SHA256: a.SHA256, InstalledAt: time.Now().UTC().Truncate(time.Second)}, "", "  ")
	if err := os.WriteFile(filepath.Join(stage, installRecordFile), rec, 0o644); err != nil {
		return Bundle{}, err
	}
	if err := os.Chmod(stage, 0o755); err != nil {
		return Bundle{}, err
	}
	if err := ctx.Err(); err != nil {
		return Bundle{}, err
	}
	if err := swapDir(stage, dest); err != nil {
		return Bundle{}, fmt.Errorf("installing runtime bundle into %s: %w", dest, err)
	}
	return Load(dest)
}

// fetch copies the artifact into w and returns its sha256.
func fetch(ctx context.Context, deps Deps, loc location, w io.Writer) (string, error) {
	var r io.ReadCloser
	if loc.Path != "" {
		f, err := os.Open(loc.Path)
		if err != nil {
			return "", err
		}
		r = f
	} else {
		client := deps.HTTP
		if client == nil {
			client = http.DefaultClient
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.HTTPS, nil)
		if err != nil {
			return "", err
		}
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return "", fmt.Errorf("server answered %s", resp.Status)
		}
		r = resp.Body
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(w, h), &ctxReader{ctx: ctx, r: r}); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// swapDir puts the directory stage at dest. When dest exists the two are
// exchanged atomically (renameat2 RENAME_EXCHANGE) and the old bundle, now
// at stage, is removed by the caller's cleanup.
func swapDir(stage, dest string) error {
	if _, err := os.Lstat(dest); errors.Is(err, os.ErrNotExist) {
		return os.Rename(stage, dest)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, stage, unix.AT_FDCWD, dest, unix.RENAME_EXCHANGE); err == nil {
		return nil
	}
	// Filesystems without RENAME_EXCHANGE: move the old bundle aside first
	// and put it back if the second rename fails.
	old := stage + ".old"
	if err := os.Rename(dest, old); err != nil {
		return err
	}
	if err := os.Rename(stage, dest); err != nil {
		if rerr := os.Rename(old, dest); rerr != nil {
			return errors.Join(err, fmt.Errorf("restoring previous bundle from %s: %w", old, rerr))
		}
		return err
	}
	return os.RemoveAll(old)
}

// Status describes the bundle banger would use.
type Status struct {
	Candidates []Candidate    `json:"candidates"`
	Found      *Candidate     `json:"found,omitempty"`
	Bundle     *Bundle        `json:"bundle,omitempty"`
	Installed  *InstallRecord `json:"installed,omitempty"`
	Problem    string         `json:"problem,omitempty"`
}

// CurrentStatus resolves the bundle for l and reads its description and
// install record, without re-hashing files (that is Verify's job).
func CurrentStatus(l Locator) Status {
	st := Status{Candidates: l.Candidates()}
	c, err := Resolve(l)
	if err != nil {
		st.Problem = err.Error()
		return st
	}
	st.Found = &c
	b, err := Load(c.Dir)
	if err != nil {
		st.Problem = err.Error()
		return st
	}
	st.Bundle = &b
	if data, err := os.ReadFile(filepath.Join(c.Dir, installRecordFile)); err == nil {
		var rec InstallRecord
		if json.Unmarshal(data, &rec) == nil {
			st.Installed = &rec
		}
	}
	return st
}
