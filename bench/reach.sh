#!/bin/sh
# Reaching into VMs (issue 14 targets), with the real binaries and a real
# guest inside a network namespace the benchmark makes. Needs root and QEMU.
#   - vm exec NAME -- true p50 <= 1.1 x ssh over an open ControlMaster
#   - vm cp of 200 MiB >= 0.9 x the throughput of tar | ssh
#   - throughput through a forward >= 0.9 x the guest's address directly
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "bench/reach.sh: needs root (it boots guests in network namespaces)" >&2
	exit 1
fi
go test -c -o /tmp/banger-e2e-reach.test ./internal/e2e
trap 'rm -f /tmp/banger-e2e-reach.test' EXIT
cd internal/e2e
BANGER_BENCH_E2E=1 /tmp/banger-e2e-reach.test -test.count=1 -test.timeout 30m -test.run '^$' -test.benchtime 1x \
	-test.bench '^(BenchmarkExecVersusSSHMaster|BenchmarkCpVersusTarSSH|BenchmarkForwardVersusDirect)$' 2>&1 |
	grep -E '^(vm |tcp |Benchmark|--- FAIL|FAIL|panic)' || true
