#!/bin/sh
# Benchmarks banger-vmm-qemu (internal/qemuvmm):
#  1. every API call through firecracker-go-sdk's client over the unix
#     socket, QEMU faked: median per call (target p50 <= 1000 µs; InstanceStart
#     is excluded).
#  2. boot-to-SSH-banner of the guest image through banger-vmm-qemu versus the
#     same QEMU command line run by hand, alternating, in a private network
#     namespace (target ratio of medians <= 1.05). Needs root, QEMU and
#     mmdebstrap (for the cached guest image); skipped otherwise.
#
#   bench/vmm-qemu.sh [ROUNDS]     ROUNDS of boots per side, default 5
set -eu
rounds=${1:-5}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

go test -c -o "$tmp/qemuvmm.test" ./internal/qemuvmm
go build -o "$tmp/banger-vmm-qemu" ./cmd/banger-vmm-qemu

echo "-- API calls (p50 per call, µs)"
"$tmp/qemuvmm.test" -test.run '^$' -test.bench '^BenchmarkAPICalls$' -test.benchtime 2000x >"$tmp/api" 2>&1 || { cat "$tmp/api"; exit 1; }
awk '/^BenchmarkAPICalls\// { n = $1; sub(/^BenchmarkAPICalls\//, "", n); sub(/-[0-9]+$/, "", n)
	for (k = 3; k < NF; k++) if ($(k+1) == "p50-µs") { printf "%-32s %6s µs\n", n, $k; if ($k + 0 > max) max = $k + 0 } }
	END { printf "max p50: %d µs (target <= 1000)\n", max }' "$tmp/api"

echo "-- boot to SSH banner, $rounds rounds each, alternating"
if [ "$(id -u)" != 0 ] || ! command -v qemu-system-x86_64 >/dev/null; then
	echo "skipped: needs root and qemu-system-x86_64"
	exit 0
fi
BANGER_BENCH_NETNS=1 BANGER_BENCH_ROUNDS=$rounds BANGER_VMM_QEMU="$tmp/banger-vmm-qemu" \
	unshare --net --mount --propagation private -- \
	"$tmp/qemuvmm.test" -test.run '^$' -test.bench '^BenchmarkBootToSSH$' -test.benchtime 1x -test.v >"$tmp/boot" 2>&1 || { cat "$tmp/boot"; exit 1; }
grep -E 'round [0-9]+|BenchmarkBootToSSH' "$tmp/boot" | sed 's/^ *//'
awk '/^BenchmarkBootToSSH/ { for (k = 3; k < NF; k++) if ($(k+1) == "ratio") printf "ratio vmm/qemu: %s (target <= 1.05)\n", $k }' "$tmp/boot"
