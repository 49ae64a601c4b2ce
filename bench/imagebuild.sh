#!/bin/sh
# Image builder benchmarks (issue 8 targets), with the real binaries booting
# real guests inside a network namespace the test makes. Needs root, QEMU,
# mmdebstrap (the base image is bootstrapped once and cached) and dpkg-deb.
#   - builder overhead per build (the build log's total minus the guest's
#     boot, package manager, scripts and shutdown): median <= 2 s
#   - upload of a 100 MiB directory over the builder's SSH client vs
#     `tar | ssh` with the OpenSSH client to the same guest: ratio <= 1.2
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "bench/imagebuild.sh: needs root (it boots guests in a network namespace)" >&2
	exit 1
fi
BANGER_BENCH_IMAGEBUILD=1 go test -count=1 -timeout 30m -run '^TestImageBuildBenchmark$' -v ./internal/e2e |
	grep -v -E '^(=== RUN|--- PASS|PASS|ok|\s+guestimage.go|\s+guest_test.go)'
