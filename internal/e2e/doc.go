// Package e2e holds banger's end-to-end tests: the real banger and bangerd
// binaries, in their own XDG directories, driven as a user would drive them.
// Tests that need root run inside a throwaway network namespace; tests that
// boot guests also need QEMU and a bootstrapped image, and skip with a
// one-line reason without them. The package has no code of its own.
package e2e
