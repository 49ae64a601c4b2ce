package config

import (
	"os"
	"path/filepath"

	"banger/internal/api"
)

// Paths are the directories and files banger uses. Everything derives from
// the XDG base directories.
type Paths struct {
	ConfigFile string // $XDG_CONFIG_HOME/banger/config.toml
	StateDir   string // $XDG_STATE_HOME/banger: database, logs
	DataDir    string // $XDG_DATA_HOME/banger: images, disks
	RuntimeDir string // $XDG_RUNTIME_DIR/banger: sockets (0700)
	CacheDir   string // $XDG_CACHE_HOME/banger: downloads, bootstrap cache
}

// DefaultPaths resolves the paths from the environment.
func DefaultPaths() Paths {
	home, _ := os.UserHomeDir()
	xdg := func(env, fallback string) string {
		if d := os.Getenv(env); d != "" && filepath.IsAbs(d) {
			return filepath.Join(d, "banger")
		}
		return filepath.Join(home, fallback, "banger")
	}
	return Paths{
		ConfigFile: filepath.Join(xdg("XDG_CONFIG_HOME", ".config"), "config.toml"),
		StateDir:   xdg("XDG_STATE_HOME", ".local/state"),
		DataDir:    xdg("XDG_DATA_HOME", ".local/share"),
		RuntimeDir: api.RuntimeDir(),
		CacheDir:   xdg("XDG_CACHE_HOME", ".cache"),
	}
}

// Socket is the daemon's API socket.
func (p Paths) Socket() string { return filepath.Join(p.RuntimeDir, api.SocketName) }

// Database is the SQLite state database.
func (p Paths) Database() string { return filepath.Join(p.StateDir, "banger.db") }

// DaemonLog is the daemon's JSON log file.
func (p Paths) DaemonLog() string { return filepath.Join(p.StateDir, "bangerd.log") }

// LockFile guards against two daemons for one user.
func (p Paths) LockFile() string { return filepath.Join(p.RuntimeDir, "bangerd.lock") }

// VMStateDir holds one VM's logs.
func (p Paths) VMStateDir(id string) string { return filepath.Join(p.StateDir, "vms", id) }

// VMDataDir holds one VM's disks.
func (p Paths) VMDataDir(id string) string { return filepath.Join(p.DataDir, "vms", id) }

// VMSocket is one VM's VMM API socket.
func (p Paths) VMSocket(id string) string { return filepath.Join(p.RuntimeDir, "vms", id+".sock") }

// DiskTemplates is where blank disks are made once per kind and size and
// copied from (a cache: deleting it costs only the next create's time).
func (p Paths) DiskTemplates() string { return filepath.Join(p.DataDir, "templates") }

// ImagesDir holds the images' files.
func (p Paths) ImagesDir() string { return filepath.Join(p.DataDir, "images") }

// SSHDir holds banger's own SSH key pair and known_hosts.
func (p Paths) SSHDir() string { return filepath.Join(p.DataDir, "ssh") }

// UserKey is banger's own SSH private key for logging into guests.
func (p Paths) UserKey() string { return filepath.Join(p.SSHDir(), "id_ed25519") }

// KnownHosts pins each VM's host key for `banger vm ssh`.
func (p Paths) KnownHosts() string { return filepath.Join(p.SSHDir(), "known_hosts") }

// SSHConfig is the OpenSSH client configuration bangerd keeps for the VMs,
// which `banger ssh-config --install` includes from ~/.ssh/config.
func (p Paths) SSHConfig() string { return filepath.Join(p.SSHDir(), "config") }
