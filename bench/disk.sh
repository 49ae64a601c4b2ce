#!/bin/sh
# Disk benchmarks (issue 5 targets):
#   - reflink clone of a 2 GiB image on a loop-mounted XFS: median ≤ 20 ms
#   - sparse copy vs `cp --sparse=always` of the same 2 GiB image, run side
#     by side: median ratio banger/cp ≤ 1.0
# The reflink part needs root (loop mount); it runs in a private mount
# namespace, so nothing stays mounted. Usage: bench/disk.sh [count]
set -eu
cd "$(dirname "$0")/.."
count=${1:-10}
work=$(mktemp -d "${TMPDIR:-/tmp}/banger-bench-disk.XXXXXX")
trap 'rm -rf "$work"' EXIT
go test -c -o "$work/disk.test" ./internal/disk

median() { sort -n | awk '{v[NR]=$1} END {if (NR==0) {print "n/a"} else if (NR%2) {print v[(NR+1)/2]} else {print (v[NR/2]+v[NR/2+1])/2}}'; }

if [ "$(id -u)" = 0 ] && command -v mkfs.xfs >/dev/null; then
	truncate -s 3G "$work/xfs.img"
	mkfs.xfs -q -m reflink=1 "$work/xfs.img"
	mkdir "$work/mnt"
	unshare --mount --propagation private sh -c '
		mount -o loop "$1/xfs.img" "$1/mnt" &&
		BANGER_BENCH_REFLINK_DIR="$1/mnt" "$1/disk.test" -test.run "^$" -test.bench "^BenchmarkCloneReflink$" -test.benchtime 20x -test.count "$2"
		rc=$?; umount "$1/mnt"; exit $rc' sh "$work" "$count" >"$work/reflink.out"
	ms=$(awk '/^BenchmarkCloneReflink/ {print $3/1e6}' "$work/reflink.out" | median)
	echo "reflink clone, 2 GiB image on XFS: median ${ms} ms per clone (target <= 20 ms, $count runs of 20)"
else
	echo "reflink clone: skipped (needs root and xfsprogs)"
fi

mkdir "$work/copy"
BANGER_BENCH_DIR="$work/copy" "$work/disk.test" -test.run '^$' -test.bench '^BenchmarkSparseCopy$' -test.benchtime "${count}x" >"$work/sparse.out"
awk '/^BenchmarkSparseCopy/ {for (i=1;i<=NF;i++) {if ($(i+1)=="banger-ms") b=$i; if ($(i+1)=="cp-ms") c=$i; if ($(i+1)=="ratio") r=$i}}
	END {printf "sparse copy, 2 GiB image with 512 MiB data: median banger %s ms, cp --sparse=always %s ms, median ratio %s (target <= 1.0, %d pairs)\n", b, c, r, '"$count"'}' "$work/sparse.out"
