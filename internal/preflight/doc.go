// Package preflight holds banger's command-scoped host checks: before an
// operation touches the host, the checks for it run and fail with a message
// that names what is missing and the command that fixes it. `banger doctor`
// runs all of them plus the host facts (KVM, cgroups, free disk).
package preflight
