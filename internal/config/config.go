package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"banger/internal/bootstrap"
	"banger/internal/image"
	"banger/internal/network"
	"banger/internal/vm"
)

// Config is banger's effective configuration.
type Config struct {
	LogLevel          string `toml:"log_level" help:"daemon log level: debug, info, warn, error"`
	VMM               string `toml:"vmm" help:"VMM: auto (Firecracker when KVM can run it, else banger-vmm-qemu), firecracker, banger-vmm-qemu, or a path"`
	RuntimeBundle     string `toml:"runtime_bundle" help:"runtime bundle directory (default: ./runtime in a checkout, ../lib/banger beside the binary)"`
	Bridge            string `toml:"bridge" help:"host bridge the VMs' TAPs join"`
	Subnet            string `toml:"subnet" help:"IPv4 subnet for VMs; the bridge holds its first address"`
	DNSListen         string `toml:"dns_listen" help:"host address of the .vm DNS server (loopback)"`
	DNSGuestPort      int    `toml:"dns_guest_port" help:"port of the guests' resolver on the bridge address (port 53 is redirected to it)"`
	DefaultImage      string `toml:"default_image" help:"image used by vm create without --image"`
	DefaultCPUs       int    `toml:"default_cpus" help:"vCPUs of a new VM"`
	DefaultMemory     string `toml:"default_memory" help:"memory of a new VM"`
	DefaultDisk       string `toml:"default_disk" help:"work disk size of a new VM"`
	BootstrapKernel   string `toml:"bootstrap_kernel" help:"kernel of images made by image bootstrap without --kernel: debian or microvm"`
	AptProxy          string `toml:"apt_proxy" help:"HTTP proxy for apt in image build VMs, e.g. http://192.168.1.10:3142 (empty: none)"`
	StopTimeout       string `toml:"stop_timeout" help:"graceful shutdown time before SIGTERM/SIGKILL"`
	BootStallTimeout  string `toml:"boot_stall_timeout" help:"a cold boot whose guest console prints nothing this long before SSH answers is stopped and booted once more"`
	ReconcileInterval string `toml:"reconcile_interval" help:"how often the daemon compares its database with the host"`
}

// Defaults returns the built-in configuration.
func Defaults() Config {
	return Config{
		LogLevel:          "info",
		VMM:               "auto",
		Bridge:            "banger0",
		Subnet:            "10.213.0.0/24",
		DNSListen:         "127.0.0.1:42069",
		DNSGuestPort:      42069,
		DefaultImage:      "base",
		DefaultCPUs:       2,
		DefaultMemory:     "1G",
		DefaultDisk:       "8G",
		BootstrapKernel:   bootstrap.KernelDebian,
		StopTimeout:       "10s",
		BootStallTimeout:  "60s",
		ReconcileInterval: "1s",
	}
}

// Source says where a value came from.
type Source string

// Value sources, in increasing precedence.
const (
	SourceDefault Source = "default"
	SourceFile    Source = "file"
	SourceEnv     Source = "env"
	SourceFlag    Source = "flag"
)

// Setting is one key of the effective configuration.
type Setting struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Source Source `json:"source"`
	Origin string `json:"origin,omitempty"` // file path or variable name
	Help   string `json:"help"`
}

// Loaded is a configuration together with where each value came from.
type Loaded struct {
	Config
	Paths    Paths
	sources  map[string]Source
	origins  map[string]string
	FileSeen bool
}

// EnvName is the environment variable that overrides key.
func EnvName(key string) string { return "BANGER_" + strings.ToUpper(key) }

// Load reads the config file (a missing file is fine) and the BANGER_*
// environment overrides, then validates the result.
func Load(paths Paths) (*Loaded, error) {
	l := &Loaded{Config: Defaults(), Paths: paths, sources: map[string]Source{}, origins: map[string]string{}}
	for _, k := range Keys() {
		l.sources[k] = SourceDefault
	}
	data, err := os.ReadFile(paths.ConfigFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("reading config %s: %w", paths.ConfigFile, err)
	default:
		l.FileSeen = true
		md, err := toml.Decode(string(data), &l.Config)
		if err != nil {
			return nil, fmt.Errorf("parsing config %s: %w (fix the file, or move it aside to use the defaults)", paths.ConfigFile, err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			var keys []string
			for _, k := range und {
				if why, ok := retired[k.String()]; ok {
					return nil, fmt.Errorf("parsing config %s: %s is gone: %s; remove it from the file", paths.ConfigFile, k, why)
				}
				keys = append(keys, k.String())
			}
			return nil, fmt.Errorf("parsing config %s: unknown keys %s (known keys: %s)", paths.ConfigFile, strings.Join(keys, ", "), strings.Join(Keys(), ", "))
		}
		for _, k := range md.Keys() {
			l.sources[k.String()] = SourceFile
			l.origins[k.String()] = paths.ConfigFile
		}
	}
	for _, k := range Keys() {
		if v, ok := os.LookupEnv(EnvName(k)); ok {
			if err := l.Set(k, v, SourceEnv); err != nil {
				return nil, fmt.Errorf("reading %s: %w", EnvName(k), err)
			}
			l.origins[k] = EnvName(k)
		}
	}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	return l, nil
}

// retired are keys earlier releases read, with why they went.
var retired = map[string]string{
	"vmm_sudo": "VMMs always run as you (after `sudo banger system setup` a user's TAPs are their own)",
}

// field finds the struct field for a TOML key.
func (c *Config) field(key string) (reflect.Value, reflect.StructField, bool) {
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).Tag.Get("toml") == key {
			return v.Field(i), t.Field(i), true
		}
	}
	return reflect.Value{}, reflect.StructField{}, false
}

// Keys lists the configuration keys in file order.
func Keys() []string {
	t := reflect.TypeOf(Config{})
	keys := make([]string, 0, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		keys = append(keys, t.Field(i).Tag.Get("toml"))
	}
	return keys
}

// Set overrides one key from a string (an environment variable or flag).
func (l *Loaded) Set(key, value string, src Source) error {
	f, _, ok := l.Config.field(key)
	if !ok {
		return fmt.Errorf("unknown config key %q (known keys: %s)", key, strings.Join(Keys(), ", "))
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(value)
	case reflect.Int:
		var n int
		if _, err := fmt.Sscanf(value, "%d", &n); err != nil {
			return fmt.Errorf("config key %s: %q is not a whole number", key, value)
		}
		f.SetInt(int64(n))
	case reflect.Bool:
		switch strings.ToLower(value) {
		case "1", "true", "yes", "on":
			f.SetBool(true)
		case "0", "false", "no", "off", "":
			f.SetBool(false)
		default:
			return fmt.Errorf("config key %s: %q is not true or false", key, value)
		}
	}
	l.sources[key] = src
	return nil
}

// Settings lists every key with its value and source, for `config show`.
func (l *Loaded) Settings() []Setting {
	var out []Setting
	for _, k := range Keys() {
		f, sf, _ := l.Config.field(k)
		out = append(out, Setting{Key: k, Value: fmt.Sprint(f.Interface()), Source: l.sources[k], Origin: l.origins[k], Help: sf.Tag.Get("help")})
	}
	return out
}

// Validate checks values that would otherwise fail later and obscurely.
func (c *Config) Validate() error {
	var errs []error
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("config log_level %q: use debug, info, warn or error", c.LogLevel))
	}
	if p, err := netip.ParsePrefix(c.Subnet); err != nil || !p.Addr().Is4() || p.Bits() > 29 {
		errs = append(errs, fmt.Errorf("config subnet %q: use an IPv4 prefix of /29 or larger, e.g. 10.213.0.0/24", c.Subnet))
	}
	if _, err := netip.ParseAddrPort(c.DNSListen); err != nil {
		errs = append(errs, fmt.Errorf("config dns_listen %q: use ADDRESS:PORT, e.g. 127.0.0.1:42069", c.DNSListen))
	}
	if err := network.ValidateIfName(c.Bridge); err != nil {
		errs = append(errs, fmt.Errorf("config bridge: %w, e.g. banger0", err))
	}
	if c.DNSGuestPort < 1024 || c.DNSGuestPort > 65535 {
		errs = append(errs, fmt.Errorf("config dns_guest_port %d: use a port from 1024 to 65535, e.g. 42069", c.DNSGuestPort))
	}
	for key, s := range map[string]string{"default_memory": c.DefaultMemory, "default_disk": c.DefaultDisk} {
		if _, err := vm.ParseSize(s); err != nil {
			errs = append(errs, fmt.Errorf("config %s: %w", key, err))
		}
	}
	for key, s := range map[string]string{"stop_timeout": c.StopTimeout, "boot_stall_timeout": c.BootStallTimeout, "reconcile_interval": c.ReconcileInterval} {
		if d, err := time.ParseDuration(s); err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("config %s %q: use a duration such as 10s", key, s))
		}
	}
	if c.BootstrapKernel != bootstrap.KernelDebian && c.BootstrapKernel != bootstrap.KernelMicrovm {
		errs = append(errs, fmt.Errorf("config bootstrap_kernel %q: use %s or %s", c.BootstrapKernel, bootstrap.KernelDebian, bootstrap.KernelMicrovm))
	}
	if c.AptProxy != "" {
		if _, err := image.ParseAptProxy(c.AptProxy); err != nil {
			errs = append(errs, fmt.Errorf("config apt_proxy: %w", err))
		}
	}
	if c.DefaultCPUs < 1 {
		errs = append(errs, fmt.Errorf("config default_cpus %d: must be at least 1", c.DefaultCPUs))
	}
	return errors.Join(errs...)
}

// MustDuration parses a duration that Validate has already checked.
func MustDuration(s string) time.Duration {
	d, _ := time.ParseDuration(s)
	return d
}

// MustSize parses a size that Validate has already checked.
func MustSize(s string) int64 {
	n, _ := vm.ParseSize(s)
	return n
}

// Source says where key's value came from; SourceDefault when nothing set
// it.
func (l *Loaded) Source(key string) Source {
	if s, ok := l.sources[key]; ok {
		return s
	}
	return SourceDefault
}
