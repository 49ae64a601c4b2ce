#!/bin/sh
# Benchmark banger's DNS server side by side with dnsmasq on loopback, with
# the same Go load client (internal/dns/bench_test.go, BenchmarkDNS): QPS
# with 8 queries in flight and latency with one in flight. Rounds alternate
# the two servers so that noise from other work on the host hits both.
#
#   bench/dns.sh [ROUNDS]        ROUNDS defaults to 5; BENCHTIME to 1s
#
# Prints per-round figures and the medians. Targets: QPS ratio
# banger/dnsmasq >= 1.0, banger p99 with one query in flight <= 100 µs.
# With BENCH_STRICT=1 a missed target makes the script exit 1.
# Needs dnsmasq (Debian package dnsmasq-base); the benchmark skips without it.
set -eu
rounds=${1:-5}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

go test -c -o "$tmp/dns.test" ./internal/dns
i=1
while [ "$i" -le "$rounds" ]; do
	"$tmp/dns.test" -test.run '^$' -test.bench '^BenchmarkDNS$' \
		-test.benchtime "${BENCHTIME:-1s}" >"$tmp/round" 2>&1 || { cat "$tmp/round"; exit 1; }
	# Lines: BenchmarkDNS/inflight=8/server=banger-2  N  X ns/op  [V unit]...
	awk -v r="$i" '/^BenchmarkDNS\// {
		split($1, p, "/"); sub(/-[0-9]+$/, "", p[3]); sub(/^server=/, "", p[3]); sub(/^inflight=/, "", p[2])
		for (k = 5; k < NF; k += 2) if ($(k+1) == "qps" || $(k+1) == "p99-µs" || $(k+1) == "p50-µs")
			print r, p[3], p[2], $(k+1), $k
	}' "$tmp/round" >>"$tmp/all"
	i=$((i + 1))
done

awk '
function median(list,   n, a, i, j, t) {
	n = split(list, a, " ")
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
{ v[$1, $2, $3, $4] = $5; if ($1 > rounds) rounds = $1 }
END {
	printf "%-6s %12s %12s %8s %14s %14s %14s\n", "round", "banger qps", "dnsmasq qps", "ratio", "banger p50µs", "banger p99µs", "dnsmasq p99µs"
	for (r = 1; r <= rounds; r++) {
		b = v[r, "banger", 8, "qps"]; d = v[r, "dnsmasq", 8, "qps"]
		ratio = (d > 0) ? b / d : 0
		printf "%-6d %12.0f %12.0f %8.2f %14.1f %14.1f %14.1f\n", r, b, d, ratio, v[r, "banger", 1, "p50-µs"], v[r, "banger", 1, "p99-µs"], v[r, "dnsmasq", 1, "p99-µs"]
		bq = bq " " b; dq = dq " " d; rq = rq " " ratio
		bp = bp " " v[r, "banger", 1, "p99-µs"]; b50 = b50 " " v[r, "banger", 1, "p50-µs"]; dp = dp " " v[r, "dnsmasq", 1, "p99-µs"]
	}
	mr = median(rq); mp = median(bp)
	printf "%-6s %12.0f %12.0f %8.2f %14.1f %14.1f %14.1f\n", "median", median(bq), median(dq), mr, median(b50), mp, median(dp)
	printf "target QPS ratio >= 1.00 (8 in flight): %s\n", (mr >= 1.0 ? "met" : "MISSED")
	printf "target p99 <= 100 µs (1 in flight):     %s\n", (mp <= 100 ? "met" : "MISSED")
	if (mr < 1.0 || mp > 100) exit 3
}' "$tmp/all" || {
	rc=$?
	[ "$rc" -eq 3 ] && [ "${BENCH_STRICT:-0}" != 1 ] && exit 0
	exit "$rc"
}
