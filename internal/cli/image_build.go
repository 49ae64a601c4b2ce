package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"banger/internal/api"
	"banger/internal/image"
	"banger/internal/imagebuild"
	"banger/internal/vm"
)

type imageBuildOptions struct {
	from, size, packagesFile, memory string
	aptProxy                         string
	noPackages, modules              bool
	copies, scripts                  []string
	cpus                             int
	output                           string
}

func (app *App) newImageBuildCommand() *cobra.Command {
	var o imageBuildOptions
	cmd := &cobra.Command{
		Use:   "build NEW",
		Short: "Build an image by provisioning a temporary VM over SSH",
		Long: `Build the image NEW from the image --from: banger boots a temporary VM from
it (its own disks, TAP, address and NAT; hidden from 'vm list' unless --all),
connects once over SSH, and provisions it in this order:

  --copy SRC:DEST   uploads a host file or directory as a streamed tar archive
  packages          installs the package file's packages with apt-get,
                    non-interactively (--packages-file; the repository's
                    default manifest, a docker-ready development set, when
                    not given, followed by its setup script, which puts
                    Docker's data on the VM's work disk; --no-packages for
                    none). Lines ending in .deb are local package files,
                    uploaded and installed.
  --modules         installs the kernel modules of the image's kernel
  --run SCRIPT      uploads and runs a script as root, output streamed

--apt-proxy URL (default: the apt_proxy config key) points the temporary
VM's apt at an HTTP proxy such as apt-cacher-ng while it builds, for every
apt run above; the setting is removed before the image is committed, so VMs
made from the image do not use it. --apt-proxy '' builds without one.

Then the guest shuts down cleanly, its root file system is checked, scrubbed
of the VM's identity (host keys, machine-id, authorized_keys) and registered
as NEW with the base's kernel and initrd and a package-manifest sidecar.
Every command and its output go to a build log kept with the image. A failed
or interrupted (Ctrl-C) build removes the temporary VM and registers nothing.`,
		Example: `  banger image build dev
  banger image build web --from base --size 8G --packages-file ./packages.txt \
      --copy ./site:/srv/site --run ./setup.sh
  banger image build dev --apt-proxy http://192.168.1.10:3142`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.runImageBuild(cmd.Context(), cmd, args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.from, "from", "", "base image (default: the configured default_image)")
	f.StringVar(&o.size, "size", "", "grow the root file system to this size, e.g. 8G (default: the base's size)")
	f.StringVar(&o.packagesFile, "packages-file", "", "package file: one package or .deb path per line (default: the repository's manifest)")
	f.BoolVar(&o.noPackages, "no-packages", false, "install no packages")
	f.StringArrayVar(&o.copies, "copy", nil, "copy a host file or directory into the image, SRC:DEST (repeatable)")
	f.StringArrayVar(&o.scripts, "run", nil, "run a script in the image as root after the packages (repeatable)")
	f.BoolVar(&o.modules, "modules", false, "install the kernel modules of the image's kernel")
	f.IntVar(&o.cpus, "cpus", 0, "vCPUs of the temporary VM (default: the configured default_cpus)")
	f.StringVar(&o.memory, "memory", "", "memory of the temporary VM, e.g. 2G (default: the configured default_memory)")
	f.StringVar(&o.aptProxy, "apt-proxy", "", "HTTP proxy `URL` for the build's apt, http[s]://HOST[:PORT] (default: the configured apt_proxy; '' for none)")
	addOutputFlag(cmd, &o.output)
	return cmd
}

// buildRequest turns the flags into the daemon request, reading the package
// file and scripts and making host paths absolute.
func buildRequest(cmd *cobra.Command, name string, o imageBuildOptions) (api.BuildImageRequest, error) {
	req := api.BuildImageRequest{Name: name, Base: o.from, NoPackages: o.noPackages, Modules: o.modules, CPUs: o.cpus}
	if o.size != "" {
		b, err := vm.ParseSize(o.size)
		if err != nil {
			return req, usageError(cmd, "--size: %v", err)
		}
		req.SizeBytes = b
	}
	if o.memory != "" {
		b, err := vm.ParseSize(o.memory)
		if err != nil {
			return req, usageError(cmd, "--memory: %v", err)
		}
		req.MemoryMiB = int(b / vm.MiB)
	}
	if o.packagesFile != "" {
		if o.noPackages {
			return req, usageError(cmd, "--packages-file and --no-packages exclude each other")
		}
		p, err := filepath.Abs(o.packagesFile)
		if err != nil {
			return req, err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return req, fmt.Errorf("reading the package file: %w", err)
		}
		// Parse here too, so mistakes show before anything boots.
		if _, err := imagebuild.ParsePackageFile(data, filepath.Dir(p), p); err != nil {
			return req, err
		}
		req.PackagesFile, req.PackagesPath = string(data), p
	}
	for _, arg := range o.copies {
		c, err := imagebuild.ParseCopy(arg)
		if err != nil {
			return req, usageError(cmd, "%v", err)
		}
		src, err := filepath.Abs(c.Src)
		if err != nil {
			return req, err
		}
		if _, err := os.Lstat(src); err != nil {
			return req, usageError(cmd, "--copy %s: %v", arg, err)
		}
		req.Copies = append(req.Copies, api.BuildCopy{Src: src, Dest: c.Dest})
	}
	for _, s := range o.scripts {
		data, err := os.ReadFile(s)
		if err != nil {
			return req, fmt.Errorf("reading --run script: %w", err)
		}
		req.Scripts = append(req.Scripts, api.BuildScript{Name: filepath.Base(s), Content: string(data)})
	}
	if o.aptProxy != "" {
		u, err := image.ParseAptProxy(o.aptProxy)
		if err != nil {
			return req, usageError(cmd, "--apt-proxy: %v", err)
		}
		req.AptProxy = u
	}
	return req, nil
}

func (app *App) runImageBuild(ctx context.Context, cmd *cobra.Command, name string, o imageBuildOptions) error {
	if err := checkOutput(cmd, o.output); err != nil {
		return err
	}
	if !cmd.Flags().Changed("apt-proxy") {
		// --apt-proxy '' means none; config.Load has validated the key.
		cfg, err := app.config()
		if err != nil {
			return err
		}
		o.aptProxy = cfg.AptProxy
	}
	req, err := buildRequest(cmd, name, o)
	if err != nil {
		return err
	}
	c, err := app.connect(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	pr := newProgress(app.Stderr)
	img, err := c.BuildImage(ctx, req, app.imageProgress(pr))
	pr.Done()
	if err != nil {
		return err
	}
	if o.output == "json" {
		return writeJSON(app.Stdout, img)
	}
	fmt.Fprintf(app.Stdout, "image %s built in %s: %s root file system (%s on disk)\n  build log: %s\n  create a VM: banger vm create dev --image %s\n",
		img.Name, time.Since(start).Round(100*time.Millisecond), vm.FormatSize(img.SizeBytes), humanBytes(img.AllocatedBytes), img.BuildLog, img.Name)
	return nil
}

// imageProgress renders a build's or commit's progress, printing the build
// log's path on its own line as soon as the daemon names it.
func (app *App) imageProgress(pr *progress) func(api.Progress) {
	return func(p api.Progress) {
		if p.Step == "log" {
			pr.mu.Lock()
			if pr.tty {
				fmt.Fprint(app.Stderr, "\r\x1b[K")
			}
			fmt.Fprintf(app.Stderr, "%s\n", p.Message)
			pr.mu.Unlock()
			return
		}
		pr.Update(p)
	}
}
