#!/bin/sh
# Image bootstrap benchmarks (issue 3 targets):
#   - cold bootstrap (image rebuilt; package downloads cached after the first) <= 60 s
#   - cached identical bootstrap into a fresh directory <= 5 s
#   - vmlinux extraction from the real kernel <= 1 s
#   - initramfs <= 2 MB compressed
# The bootstrap parts need root and mmdebstrap. Usage: bench/bootstrap.sh [count]
set -eu
cd "$(dirname "$0")/.."
count=${1:-3}
work=$(mktemp -d "${TMPDIR:-/tmp}/banger-bench-bootstrap.XXXXXX")
trap 'rm -rf "$work"' EXIT
go test -c -o "$work/bootstrap.test" ./internal/bootstrap

median() { sort -n | awk '{v[NR]=$1} END {if (NR==0) {print "n/a"} else if (NR%2) {print v[(NR+1)/2]} else {print (v[NR/2]+v[NR/2+1])/2}}'; }

if [ "$(id -u)" = 0 ] && command -v mmdebstrap >/dev/null; then
	cache=${BANGER_BENCH_CACHE:-/var/cache/banger-bench}
	mkdir -p "$cache"
	BANGER_BENCH_CACHE="$cache" "$work/bootstrap.test" -test.run '^$' -test.bench '^BenchmarkBootstrapCold$' -test.benchtime 1x -test.count "$count" >"$work/cold.out"
	s=$(awk '/^BenchmarkBootstrapCold/ {print $3/1e9}' "$work/cold.out" | median)
	initrd=$(awk '/^BenchmarkBootstrapCold/ {for (i=1;i<=NF;i++) if ($(i+1)=="initrd-bytes") print $i}' "$work/cold.out" | median)
	rootfs=$(awk '/^BenchmarkBootstrapCold/ {for (i=1;i<=NF;i++) if ($(i+1)=="rootfs-MiB") print $i}' "$work/cold.out" | median)
	echo "cold bootstrap: median ${s} s (target <= 60 s, $count runs; warm package cache)"
	echo "initramfs: ${initrd} bytes compressed (target <= 2 MB); rootfs allocates ${rootfs} MiB"
	BANGER_BENCH_CACHE="$cache" "$work/bootstrap.test" -test.run '^$' -test.bench '^BenchmarkBootstrapCached$' -test.benchtime 1x -test.count "$((count * 3))" >"$work/cached.out"
	s=$(awk '/^BenchmarkBootstrapCached/ {print $3/1e9}' "$work/cached.out" | median)
	echo "cached bootstrap: median ${s} s (target <= 5 s, $((count * 3)) runs)"
	kernel=$(ls -t "$cache"/images/*/vmlinuz 2>/dev/null | head -1)
else
	echo "bootstrap: skipped (needs root and mmdebstrap)"
	kernel=
fi

BANGER_BENCH_KERNEL="$kernel" "$work/bootstrap.test" -test.run '^$' -test.bench '^BenchmarkExtractVmlinux$' -test.benchtime 3x -test.count 5 >"$work/vmlinux.out"
ms=$(awk '/^BenchmarkExtractVmlinux/ {print $3/1e6}' "$work/vmlinux.out" | median)
echo "vmlinux extraction (${kernel:-synthetic 40 MB lz4 kernel}): median ${ms} ms (target <= 1000 ms)"
