#!/bin/sh
# Benchmarks one VM's network setup (bridge + TAP + NAT rules; target 30 ms)
# for both iptables backends, inside a throwaway network namespace so the
# host's own network is never touched. Needs root, iptables and unshare.
# Prints Go benchmark lines; p50-ms is the median of one setup.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "bench/network.sh: needs root (it creates bridges, TAPs and iptables rules in a private network namespace)" >&2
	exit 1
fi
bin=$(mktemp -t banger-nat-bench.XXXXXX)
trap 'rm -f "$bin"' EXIT
go test -c -o "$bin" ./internal/nat
BANGER_BENCH_NETNS=1 unshare --net --mount --propagation private -- \
	sh -c 'ip link set lo up && exec "$0" -test.run "^$" -test.bench "^BenchmarkVMNetworkSetup$" -test.benchtime "${BENCHTIME:-100x}" -test.count "${COUNT:-1}"' "$bin"
