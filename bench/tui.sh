#!/bin/sh
# TUI benchmarks (issue 9 targets), with 200 VMs:
#   - first frame after start: median <= 150 ms
#   - a state change visible after the daemon records it: median <= 250 ms
# In process (internal/tui BenchmarkFirstFrame, BenchmarkStateChange,
# against a daemon with fake layers), and for the first frame also as the
# whole `banger tui` process under tmux against a real bangerd with a
# seeded database (needs tmux; runs in its own XDG directories and tmux
# server, and stops its own daemon).
set -eu
cd "$(dirname "$0")/.."
runs=${RUNS:-20}
work=$(mktemp -d "${TMPDIR:-/tmp}/banger-bench-tui.XXXXXX")
export XDG_CONFIG_HOME="$work/config" XDG_STATE_HOME="$work/state" XDG_DATA_HOME="$work/data" XDG_CACHE_HOME="$work/cache" XDG_RUNTIME_DIR="$work/run"
# A free DNS port, so that the benchmark runs beside the user's own bangerd.
export BANGER_DNS_LISTEN=127.0.0.1:0
sock="$work/tmux.sock"
cleanup() {
	tmux -S "$sock" kill-server >/dev/null 2>&1 || true
	bin/banger daemon stop >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
[ -x bin/banger ] || make -s build

median() { sort -n | awk '{v[NR]=$1} END {if (NR==0) {print "n/a"} else if (NR%2) {print v[(NR+1)/2]} else {print (v[NR/2]+v[NR/2+1])/2}}'; }

go test -count=1 -run '^$' -bench '^Benchmark(FirstFrame|StateChange)$' -benchtime "${runs}x" ./internal/tui >"$work/go.out"
awk -v runs="$runs" '
	/^BenchmarkFirstFrame/ {for (i=1;i<=NF;i++) if ($(i+1)=="median-ms") printf "tui first frame, 200 VMs, in process: median %s ms over %d runs (target <= 150 ms)\n", $i, runs}
	/^BenchmarkStateChange/ {for (i=1;i<=NF;i++) if ($(i+1)=="median-ms") printf "tui state change visible after the daemon records it, 200 VMs: median %s ms over %d runs (target <= 250 ms)\n", $i, runs}
' "$work/go.out"

if ! command -v tmux >/dev/null; then
	echo "tui first frame, whole process: skipped (needs tmux)"
	exit 0
fi
BANGER_BENCH_SEED_VMS=200 go test -count=1 -run '^TestSeedForBenchmark$' ./internal/daemon >/dev/null
bin/banger daemon start >/dev/null
: >"$work/times"
i=0
while [ $i -lt "$runs" ]; do
	s=$(date +%s%N)
	tmux -S "$sock" -f /dev/null new-session -d -s tui -x 120 -y 40 \
		-e XDG_CONFIG_HOME="$XDG_CONFIG_HOME" -e XDG_STATE_HOME="$XDG_STATE_HOME" -e XDG_DATA_HOME="$XDG_DATA_HOME" \
		-e XDG_CACHE_HOME="$XDG_CACHE_HOME" -e XDG_RUNTIME_DIR="$XDG_RUNTIME_DIR" -e NO_COLOR=1 -e BANGER_NO_AUTOSTART=1 \
		"$PWD/bin/banger tui"
	until tmux -S "$sock" capture-pane -p -t tui 2>/dev/null | grep -q 'VMs 200'; do :; done
	e=$(date +%s%N)
	echo "$(( (e - s) / 1000 ))" >>"$work/times"
	tmux -S "$sock" kill-session -t tui
	i=$((i + 1))
done
ms=$(median <"$work/times" | awk '{printf "%.1f", $1/1000}')
echo "tui first frame, 200 VMs, whole banger process under tmux (incl. tmux start and polling): median ${ms} ms over $runs runs (target <= 150 ms)"
