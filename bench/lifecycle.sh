#!/bin/sh
# VM lifecycle benchmarks (issue 6 targets), with the real binaries booting
# real guests inside network namespaces the benchmark makes, all in a
# private mount namespace (the control-plane run mounts a loop ext4 and a
# loop XFS with reflinks). Needs root, QEMU, xfsprogs and mmdebstrap (the
# guest image is bootstrapped once and cached).
#   - vm create control plane with a VMM that returns at once, ext4 (layers)
#     side by side with XFS (reflink clones): p50 <= 60 ms on ext4, disk per
#     VM right after create <= 16 MiB (issue 15)
#   - what the privilege boundary adds to it for an ordinary user: <= 20 ms
#   - create-to-SSH through banger vs the bare VMM, side by side: ratio <= 1.10
#   - vm ssh NAME -- true vs plain ssh with the same key: ratio <= 1.2
#   - cold create --wait with Debian's kernel vs the microvm kernel, side by
#     side (issue 17; the first run builds the microvm kernel, minutes)
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "bench/lifecycle.sh: needs root (it boots guests in network namespaces)" >&2
	exit 1
fi
go test -c -o /tmp/banger-e2e-bench.test ./internal/e2e
trap 'rm -f /tmp/banger-e2e-bench.test' EXIT
run() {
	BANGER_BENCH_E2E=1 BANGER_BENCH_MOUNTNS=1 "$@" unshare --mount --propagation private \
		/tmp/banger-e2e-bench.test -test.count=1 -test.timeout 30m -test.run '^$' -test.benchtime 1x -test.bench "$BENCH_RE" 2>&1 |
		grep -E '^(vm |create |cold |  create|  load|  boot|  banger|  bare|  daemon|Benchmark|--- FAIL|FAIL|panic)' || true
}
(cd internal/e2e && BENCH_RE='^BenchmarkCreateControlPlane$' run env)
(cd internal/e2e && BENCH_RE='^BenchmarkCreatePrivilegeCrossing$' run env)
(cd internal/e2e && BENCH_RE='^(BenchmarkCreateToSSHVersusBareVMM|BenchmarkSSHVersusPlainSSH)$' run env)
(cd internal/e2e && BENCH_RE='^BenchmarkColdCreateByKernel$' run env)
