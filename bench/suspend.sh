#!/bin/sh
# Suspend and resume benchmarks (issue 16 targets), with the real binaries
# booting a real guest inside a network namespace the benchmark makes.
# Needs root, QEMU and mmdebstrap (the guest image is bootstrapped once and
# cached). Side by side in each round, on one VM:
#   - vm start --wait of a stopped VM (cold boot to SSH ready)
#   - vm pause, vm resume: <= 50 ms each
#   - vm suspend, then vm start --wait of the suspended VM (restore to SSH
#     ready): <= 1 s; and the same with a daemon restart in between
#   - vm clone of the running VM, to SSH ready at the clone's address
#   - vm create --wait of the VM's shape from a warm template (image warm):
#     <= 1.5 s and <= 0.15 x the cold boot
#   - PSS of five idle VMs from one warm template vs one cold-booted VM: <= 2 x
# BANGER_BENCH_ROUNDS sets the rounds (default 5); medians are reported.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "bench/suspend.sh: needs root (it boots a guest in a network namespace)" >&2
	exit 1
fi
go test -c -o /tmp/banger-e2e-suspend.test ./internal/e2e
trap 'rm -f /tmp/banger-e2e-suspend.test' EXIT
cd internal/e2e
BANGER_BENCH_E2E=1 /tmp/banger-e2e-suspend.test -test.count=1 -test.timeout 60m -test.run '^$' \
	-test.benchtime 1x -test.bench '^(BenchmarkSuspendResume|BenchmarkTemplatePSS)$' 2>&1 |
	grep -E '^(vm |PSS |  |Benchmark|--- FAIL|FAIL|panic)' || true
