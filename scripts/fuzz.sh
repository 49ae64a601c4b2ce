#!/bin/sh
# Runs every fuzz target (func FuzzX in a _test.go file) for FUZZTIME each.
# Usage: scripts/fuzz.sh FUZZTIME FUZZMINIMIZETIME [GO]
#
# Go before 1.27 can fail a target with a bare "context deadline exceeded"
# when -fuzztime ends while a worker is busy (go.dev/issue/75804): nothing
# was found, no input was written. Such a run is made once more; any other
# failure, or that one twice, fails.
set -u
fuzztime=$1
minimize=$2
go=${3:-go}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
for file in $(grep -rl --include='*_test.go' '^func Fuzz' internal packages cmd | sort); do
	for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
		pkg=./$(dirname "$file")
		for try in 1 2; do
			echo "== $target $pkg"
			"$go" test -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" "$pkg" >"$log" 2>&1
			rc=$?
			cat "$log"
			[ $rc -eq 0 ] && break
			if [ $try -eq 1 ] && grep -q 'context deadline exceeded' "$log" && ! grep -qi 'failing input written\|panic:\|_test.go:[0-9]' "$log"; then
				echo "== $target: Go's -fuzztime deadline race (go.dev/issue/75804), nothing found; running it once more"
				continue
			fi
			echo "== $target failed"
			status=1
			break
		done
	done
done
exit $status
