// Package packages holds banger's package manifests, the package files
// `banger image build` installs into images. The default manifest is
// embedded in the binaries so that the daemon and the CLI agree on it
// wherever they are installed.
package packages
