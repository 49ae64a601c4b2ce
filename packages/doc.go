// Package packages holds banger's package manifests, the package files
// `banger image build` installs into images. The default manifest and its
// setup script (run after its packages) are embedded in the binaries so
// that the daemon and the CLI agree on them wherever they are installed.
package packages
