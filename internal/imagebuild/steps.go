package imagebuild

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"banger/internal/guest"
	"banger/internal/image"
)

// Conn is one SSH connection to the build VM (*guest.Client): every step
// opens its own session on it.
type Conn interface {
	Run(ctx context.Context, cmd guest.Command) error
	Upload(ctx context.Context, src, dst string) error
}

// Step is one provisioning step. Name is stable (it names a failure); Kind
// says whose time it spends.
type Step struct {
	Name    string
	Kind    string
	Message string
	Run     func(ctx context.Context, c Conn, l *Log) error
}

// WorkDir is the guest directory the builder stages packages and scripts
// in; the last step removes it.
const WorkDir = "/var/tmp/banger-build"

// aptEnv makes apt and dpkg never ask: keep changed configuration files,
// take the package's defaults for new ones.
const aptEnv = "DEBIAN_FRONTEND=noninteractive APT_LISTCHANGES_FRONTEND=none"

// AptProxyConf is the apt configuration file that points the build VM's
// apt at Plan.AptProxy; the tidy step removes it before the image is
// committed.
const AptProxyConf = "/etc/apt/apt.conf.d/99banger-build-proxy"

// aptProxyCommand stores the configuration read from standard input as
// AptProxyConf: the proxy URL never becomes part of a shell command.
const aptProxyCommand = "mkdir -p /etc/apt/apt.conf.d && cat > " + AptProxyConf

// AptProxyConfig is the content of AptProxyConf for the proxy url, which
// must be in image.ParseAptProxy's form.
func AptProxyConfig(url string) string {
	return "// Written by banger image build for the build only; removed before the image is committed.\n" +
		"Acquire::http::Proxy \"" + url + "\";\n" +
		"Acquire::https::Proxy \"" + url + "\";\n"
}

var kernelVersionPattern = regexp.MustCompile(`^[A-Za-z0-9._+~-]+$`)

// InstallCommand is the apt-get command that installs names and the local
// package files at guest paths debs.
func InstallCommand(names, debs []string) string {
	args := []string{aptEnv, "apt-get", "install", "-y", "-q", "--no-install-recommends",
		"-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"}
	for _, n := range names {
		args = append(args, guest.Quote(n))
	}
	for _, d := range debs {
		args = append(args, guest.Quote(d))
	}
	return strings.Join(args, " ")
}

// ModulesCommand makes sure /lib/modules/VERSION of the image's kernel is
// installed: it does nothing when the modules are there (a bootstrapped
// image has them, its kernel package is installed), and otherwise installs
// Debian's linux-image-VERSION package, which ships them. It ends with
// depmod so module loading works either way.
func ModulesCommand(version string) string {
	v := guest.Quote(version)
	return fmt.Sprintf(`set -e; m=/lib/modules/%s; running=$(uname -r); `+
		`if [ "$running" != %s ]; then echo "note: the guest runs kernel $running, the image's kernel is %s"; fi; `+
		`if [ -f "$m/modules.dep" ] && [ -d "$m/kernel" ]; then echo "modules of %s already installed ($(find "$m/kernel" -name '*.ko*' | wc -l) modules)"; `+
		`else %s apt-get update -q && %s apt-get install -y -q --no-install-recommends linux-image-%s; fi; depmod -a %s`,
		version, v, version, version, aptEnv, aptEnv, v, v)
}

// ScriptCommand is the guest command that stores a script read from
// standard input as file and runs it from /root with no input. A script
// without a "#!" line runs with /bin/sh.
func ScriptCommand(file string, shebang bool) string {
	f := guest.Quote(file)
	run := f
	if !shebang {
		run = "/bin/sh " + f
	}
	return fmt.Sprintf("mkdir -p %s && cat > %s && chmod 0755 %s && cd /root && %s BANGER_BUILD=1 %s </dev/null",
		guest.Quote(path.Dir(file)), f, f, aptEnv, run)
}

// Steps returns the provisioning steps of p, in order: copies, local
// package uploads, the apt proxy, packages, kernel modules, scripts,
// tidy-up.
func Steps(p Plan) ([]Step, error) {
	var steps []Step
	if p.AptProxy != "" {
		u, err := image.ParseAptProxy(p.AptProxy)
		if err != nil {
			return nil, err
		}
		p.AptProxy = u
	}
	for i, c := range p.Copies {
		c := c
		steps = append(steps, Step{
			Name: fmt.Sprintf("copy-%d", i+1), Kind: KindBuilder,
			Message: fmt.Sprintf("copying %s to %s", c.Src, c.Dest),
			Run: func(ctx context.Context, conn Conn, l *Log) error {
				l.Command("upload " + c.Src + " -> " + c.Dest)
				return conn.Upload(ctx, c.Src, c.Dest)
			},
		})
	}
	var guestDebs []string
	if len(p.Packages.Debs) > 0 {
		debDir := WorkDir + "/debs"
		for _, d := range p.Packages.Debs {
			guestDebs = append(guestDebs, debDir+"/"+filepath.Base(d))
		}
		steps = append(steps, Step{
			Name: "upload-debs", Kind: KindBuilder,
			Message: fmt.Sprintf("uploading %d local package file(s)", len(p.Packages.Debs)),
			Run: func(ctx context.Context, conn Conn, l *Log) error {
				for i, d := range p.Packages.Debs {
					l.Command("upload " + d + " -> " + guestDebs[i])
					if err := conn.Upload(ctx, d, guestDebs[i]); err != nil {
						return err
					}
				}
				return nil
			},
		})
	}
	// The proxy serves whatever runs apt: packages, modules and scripts.
	proxy := p.AptProxy != "" && (!p.Packages.Empty() || p.Modules || len(p.Scripts) > 0)
	if proxy {
		steps = append(steps, Step{
			Name: "apt-proxy", Kind: KindBuilder,
			Message: "pointing apt at the proxy " + p.AptProxy,
			Run: func(ctx context.Context, conn Conn, l *Log) error {
				return runInput(ctx, conn, l, "apt-proxy", aptProxyCommand, AptProxyConfig(p.AptProxy))
			},
		})
	}
	reach := "its mirror through banger's NAT"
	if proxy {
		reach = "the apt proxy " + p.AptProxy
	}
	if !p.Packages.Empty() {
		n := len(p.Packages.Names) + len(p.Packages.Debs)
		steps = append(steps, Step{
			Name: "packages", Kind: KindPackages,
			Message: fmt.Sprintf("installing %d package(s) with apt-get", n),
			Run: func(ctx context.Context, conn Conn, l *Log) error {
				// Local package files need no index; names do.
				if len(p.Packages.Names) > 0 {
					if err := run(ctx, conn, l, "packages", aptEnv+" apt-get update -q"); err != nil {
						return fmt.Errorf("updating the package index (does the guest reach %s?): %w", reach, err)
					}
				}
				if err := run(ctx, conn, l, "packages", InstallCommand(p.Packages.Names, guestDebs)); err != nil {
					return fmt.Errorf("installing packages: %w", err)
				}
				return run(ctx, conn, l, "packages", "apt-get clean && rm -rf /var/lib/apt/lists/*")
			},
		})
	}
	if p.Modules {
		if !kernelVersionPattern.MatchString(p.KernelVersion) {
			return nil, fmt.Errorf("--modules: the image's kernel version %q is unknown or malformed", p.KernelVersion)
		}
		steps = append(steps, Step{
			Name: "modules", Kind: KindPackages,
			Message: "installing the kernel modules of " + p.KernelVersion,
			Run: func(ctx context.Context, conn Conn, l *Log) error {
				return run(ctx, conn, l, "modules", ModulesCommand(p.KernelVersion))
			},
		})
	}
	for i, s := range p.Scripts {
		s := s
		name := fmt.Sprintf("run-%d", i+1)
		file := fmt.Sprintf("%s/%02d-%s", WorkDir, i+1, safeName(s.Name))
		steps = append(steps, Step{
			Name: name, Kind: KindScripts,
			Message: "running " + s.Name,
			Run: func(ctx context.Context, conn Conn, l *Log) error {
				line := ScriptCommand(file, strings.HasPrefix(s.Content, "#!"))
				return runInput(ctx, conn, l, name, line, s.Content)
			},
		})
	}
	// Each SSH session costs the guest a fraction of a second under
	// emulation: tidy up only when something was staged or the proxy set.
	var tidy []string
	if len(p.Packages.Debs) > 0 || len(p.Scripts) > 0 {
		tidy = append(tidy, WorkDir)
	}
	if proxy {
		tidy = append(tidy, AptProxyConf)
	}
	if len(tidy) > 0 {
		steps = append(steps, Step{
			Name: "tidy", Kind: KindBuilder, Message: "removing the build's staging files and settings",
			Run: func(ctx context.Context, conn Conn, l *Log) error {
				return run(ctx, conn, l, "tidy", "rm -rf "+strings.Join(tidy, " "))
			},
		})
	}
	// The image is what reached the disk: flush it before the guest is
	// asked to power off, so a guest that does not (and is then stopped
	// by signal) still leaves every change of the build on its disk.
	return append(steps, Step{
		Name: "sync", Kind: KindBuilder, Message: "flushing the guest's writes to its disks",
		Run: func(ctx context.Context, conn Conn, l *Log) error { return run(ctx, conn, l, "sync", "sync") },
	}), nil
}

// safeName keeps a script's file name readable and harmless in a path.
func safeName(name string) string {
	name = filepath.Base(name)
	var b strings.Builder
	for _, r := range name {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteRune('_')
		}
	}
	if b.Len() == 0 || name == "." || name == "/" {
		return "script"
	}
	return b.String()
}

func run(ctx context.Context, conn Conn, l *Log, step, line string) error {
	return runInput(ctx, conn, l, step, line, "")
}

// runInput runs line in the guest, logging it and streaming its output to
// the log and progress. A failure carries the output's last lines.
func runInput(ctx context.Context, conn Conn, l *Log, step, line, stdin string) error {
	l.Command(line)
	out := l.Output(step)
	tail := &tailLines{max: 15}
	w := &teeWriter{a: out, b: tail}
	cmd := guest.Command{Line: line, Stdout: w, Stderr: w}
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := conn.Run(ctx, cmd)
	out.Close()
	var ee *guest.ExitError
	if errors.As(err, &ee) && ee.Stderr == "" {
		ee.Stderr = tail.String()
	}
	return err
}

// teeWriter writes to both a and b; an SSH session writes standard output
// and standard error from two goroutines, so it serializes them.
type teeWriter struct {
	mu   sync.Mutex
	a, b io.Writer
}

func (t *teeWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.a.Write(p)
	return t.b.Write(p)
}

// tailLines keeps the last max lines written to it.
type tailLines struct {
	max   int
	lines []string
	part  string
}

func (t *tailLines) Write(p []byte) (int, error) {
	s := t.part + string(p)
	parts := strings.Split(s, "\n")
	t.part = parts[len(parts)-1]
	for _, l := range parts[:len(parts)-1] {
		if strings.TrimSpace(l) == "" {
			continue
		}
		t.lines = append(t.lines, l)
		if len(t.lines) > t.max {
			t.lines = t.lines[1:]
		}
	}
	return len(p), nil
}

func (t *tailLines) String() string {
	all := t.lines
	if strings.TrimSpace(t.part) != "" {
		all = append(append([]string(nil), all...), t.part)
	}
	return strings.Join(all, "\n")
}
