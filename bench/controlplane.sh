#!/bin/sh
# Control-plane benchmarks (issue 2 targets), against the real binaries:
#   - `banger vm list -o json` with 1,000 VMs in the database, whole CLI
#     process, against a running daemon: median <= 50 ms
#   - idle daemon RSS <= 30 MiB
# Runs in its own XDG directories; starts and stops its own daemon.
set -eu
cd "$(dirname "$0")/.."
runs=${RUNS:-30}
work=$(mktemp -d "${TMPDIR:-/tmp}/banger-bench-cp.XXXXXX")
export XDG_CONFIG_HOME="$work/config" XDG_STATE_HOME="$work/state" XDG_DATA_HOME="$work/data" XDG_CACHE_HOME="$work/cache" XDG_RUNTIME_DIR="$work/run"
# A free DNS port, so that the benchmark runs beside the user's own bangerd.
export BANGER_DNS_LISTEN=127.0.0.1:0
cleanup() { bin/banger daemon stop >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
[ -x bin/banger ] || make -s build

BANGER_BENCH_SEED_VMS=1000 go test -count=1 -run '^TestSeedForBenchmark$' ./internal/daemon >/dev/null
bin/banger daemon start >/dev/null
n=$(bin/banger vm list -o json | grep -c '"name"')
[ "$n" = 1000 ] || { echo "expected 1000 vms, listed $n" >&2; exit 1; }

median() { sort -n | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
i=0; : >"$work/times"
while [ $i -lt "$runs" ]; do
	s=$(date +%s%N); bin/banger vm list -o json >/dev/null; e=$(date +%s%N)
	echo "$(( (e - s) / 1000 ))" >>"$work/times"; i=$((i + 1))
done
ms=$(median <"$work/times" | awk '{printf "%.1f", $1/1000}')
echo "vm list -o json, 1000 VMs, whole CLI process: median ${ms} ms over $runs runs (target <= 50 ms)"

sleep 3
pid=$(bin/banger daemon status -o json | sed -n 's/.*"pid": \([0-9]*\).*/\1/p' | head -1)
rss=$(awk '/^VmRSS/ {printf "%.1f", $2/1024}' "/proc/$pid/status")
echo "idle bangerd RSS (1000 VMs in the database): ${rss} MiB (target <= 30 MiB)"
